package api

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Error codes of Craftkit's error envelope, and the status of each. This
// table is the one place a code meets its status.
const (
	codeUnauthorized     = "unauthorized"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeBadRequest       = "bad_request"
	codeUnavailable      = "unavailable"
)

var statusOf = map[string]int{
	codeUnauthorized:     http.StatusUnauthorized,
	codeNotFound:         http.StatusNotFound,
	codeMethodNotAllowed: http.StatusMethodNotAllowed,
	codeBadRequest:       http.StatusBadRequest,
	codeUnavailable:      http.StatusServiceUnavailable,
}

// retryAfter is what a 503 tells clients to wait, in seconds.
const retryAfter = 1

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError writes Craftkit's error envelope {"error":{"code","message"}}
// with the status of code, and the headers that status calls for.
func writeError(w http.ResponseWriter, code, message string) {
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="craftkit"`)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", allowed)
	}
	var body errorBody
	body.Error.Code, body.Error.Message = code, message
	writeJSON(w, status, body)
}

// writeJSON writes v as JSON with status, setting headers before the status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"encoding failed"}}`)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
