package events

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ShareBase checks a share base, the URL that share links of a project
// begin with ({shareBase}/share/{shareToken}), and returns it without its
// trailing slash. It must be an absolute http or https URL with a host,
// without user info, query or fragment, ending in at most one slash.
// project.updated's shareBase and sharesd's SHARE_BASE_URL follow this one
// rule. The error says what is wrong, for an operator.
func ShareBase(s string) (string, error) {
	u, err := url.Parse(s)
	var reason string
	switch {
	case err != nil:
		reason = "not a valid URL"
	case u.Scheme == "":
		reason = "got a relative URL, want an absolute http or https URL"
	case u.Scheme != "http" && u.Scheme != "https":
		reason = fmt.Sprintf("got scheme %s, want http or https", quote(u.Scheme))
	case u.Hostname() == "":
		reason = "has no host, want an absolute http or https URL"
	case u.User != nil:
		reason = "has user info, want none"
	case strings.ContainsAny(s, "?#"):
		reason = "has a query or fragment, want neither"
	case strings.HasSuffix(s, "//"):
		reason = `ends with "//", want at most one trailing slash`
	default:
		return strings.TrimSuffix(s, "/"), nil
	}
	return "", errors.New(reason)
}
