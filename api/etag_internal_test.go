package api

import (
	"math"
	"strings"
	"testing"

	"github.com/craftkit/sharesd/projector/readmodel"
)

// TestETagRoundTrip: an ETag carries every part of the versions, the salt
// (generation and repairs) included, so a list repaired or rebuilt at the
// same list and project versions gets another ETag.
func TestETagRoundTrip(t *testing.T) {
	t.Parallel()
	const tag = "1x2y3z"
	for _, v := range []readmodel.Versions{
		{},
		{Ver: 7, ProjectVer: 3, Salt: 1},
		{Ver: math.MaxUint64, ProjectVer: math.MaxUint64, Salt: math.MaxUint32},
	} {
		e := etag(v, tag)
		if got, ok := parseETag(e, tag); !ok || got != v {
			t.Errorf("parseETag(etag(%+v)) = %+v, %v", v, got, ok)
		}
		if got, ok := parseETag("W/"+e, tag); !ok || got != v {
			t.Errorf("the weak form of %s: %+v, %v", e, got, ok)
		}
		if _, ok := parseETag(e, "other"); ok {
			t.Errorf("%s parsed as a tag of another configuration", e)
		}
	}
	a, b := etag(readmodel.Versions{Ver: 5, Salt: 1}, tag), etag(readmodel.Versions{Ver: 5, Salt: 2}, tag)
	if a == b {
		t.Fatalf("salts 1 and 2 give the same ETag %s", a)
	}
	lower := etag(readmodel.Versions{Salt: 1e9}, tag) // its salt has letters
	upper := lower[:len(lower)-1-saltDigits] + strings.ToUpper(lower[len(lower)-1-saltDigits:])
	for _, bad := range []string{
		`"5.0.` + tag + `"`,         // no salt
		`"5.0.` + tag + `00000001"`, // a salt too long
		upper,                       // not how etag spells it
	} {
		if v, ok := parseETag(bad, tag); ok {
			t.Errorf("parseETag(%s) = %+v, want not ours", bad, v)
		}
	}
}
