package h1proxy

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
)

// A head is the request or status line and the header fields of a message, parsed in place:
// its slices point into the reader's buffer and stay valid until the reader is read again.
type head struct {
	raw    []byte  // the whole head, through its final empty line
	line   [3]span // request: method, target, version; response: version, status, reason
	fields []field
}

type span struct{ start, end int }

type field struct{ name, value span }

func (h *head) bytes(s span) []byte { return h.raw[s.start:s.end] }

// get returns the value of the first field named name (case-insensitively), and whether there
// is one.
func (h *head) get(name string) ([]byte, bool) {
	for _, f := range h.fields {
		if equalFold(h.bytes(f.name), name) {
			return h.bytes(f.value), true
		}
	}
	return nil, false
}

// count is how many fields are named name.
func (h *head) count(name string) int {
	n := 0
	for _, f := range h.fields {
		if equalFold(h.bytes(f.name), name) {
			n++
		}
	}
	return n
}

// errNotPlain marks a head the fast path leaves to net/http: too large, unusual, or invalid
// (net/http then answers it, or refuses it, by its own rules).
var errNotPlain = errors.New("h1proxy: not a plain head")

// errBadResponse is an answer the fast path cannot relay faithfully.
var errBadResponse = errors.New("h1proxy: malformed response from the upstream")

// peekHead finds a whole head at the start of br's buffer, reading until its end arrives,
// without consuming it. A head larger than the buffer is errNotPlain.
func peekHead(br *bufio.Reader) ([]byte, error) {
	from := 0
	for {
		n := br.Buffered()
		buf, _ := br.Peek(n)
		if i := bytes.Index(buf[from:], crlfcrlf); i >= 0 {
			if bytes.Contains(buf[:from+i+4], lflf) {
				return nil, errNotPlain
			}
			return buf[:from+i+4], nil
		}
		if bytes.Contains(buf, lflf) {
			return nil, errNotPlain // lines ending in a bare LF
		}
		if n == br.Size() {
			return nil, errNotPlain
		}
		from = max(0, n-3)
		// Asking for one byte more than there is reads whatever has arrived, or fails.
		if _, err := br.Peek(n + 1); err != nil {
			return nil, err
		}
	}
}

// headBuffered reports whether br holds a whole head already (peekHead then reads nothing).
func headBuffered(br *bufio.Reader) bool {
	buf, _ := br.Peek(br.Buffered())
	return bytes.Contains(buf, crlfcrlf)
}

var crlfcrlf, lflf = []byte("\r\n\r\n"), []byte("\n\n")

// parse splits raw (a head ending in an empty line) into its first line's three parts and its
// fields, reusing h's field slice. It accepts only what every HTTP/1.1 parser reads alike:
// lines end in CRLF, field names are tokens with the colon right after them, values hold no
// control characters, no field is folded. Anything else is errNotPlain.
func (h *head) parse(raw []byte) error {
	h.raw, h.fields = raw, h.fields[:0]
	eol := bytes.Index(raw, crlf)
	first := raw[:eol]
	sp1 := bytes.IndexByte(first, ' ')
	if sp1 <= 0 {
		return errNotPlain
	}
	rest := first[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 < 0 {
		// A status line may have no reason phrase; a request line always has three parts.
		h.line = [3]span{{0, sp1}, {sp1 + 1, eol}, {eol, eol}}
	} else {
		h.line = [3]span{{0, sp1}, {sp1 + 1, sp1 + 1 + sp2}, {sp1 + 2 + sp2, eol}}
	}
	for i := 0; i < eol; i++ {
		if c := raw[i]; c < ' ' || c == 0x7f {
			return errNotPlain
		}
	}
	pos := eol + 2
	for {
		end := bytes.Index(raw[pos:], crlf)
		if end < 0 {
			return errNotPlain
		}
		if end == 0 {
			return nil // the empty line
		}
		line := raw[pos : pos+end]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return errNotPlain
		}
		for _, c := range line[:colon] {
			if !isTokenByte(c) {
				return errNotPlain
			}
		}
		vs, ve := colon+1, len(line)
		for vs < ve && (line[vs] == ' ' || line[vs] == '\t') {
			vs++
		}
		for ve > vs && (line[ve-1] == ' ' || line[ve-1] == '\t') {
			ve--
		}
		if !controlFree(line[vs:ve]) {
			return errNotPlain
		}
		if len(h.fields) == maxFields {
			return errNotPlain
		}
		h.fields = append(h.fields, field{name: span{pos, pos + colon}, value: span{pos + vs, pos + ve}})
		pos += end + 2
	}
}

// maxFields bounds the fields of a head the fast path takes.
const maxFields = 100

var crlf = []byte("\r\n")

// controlFree reports whether a field's value v holds no control characters but tabs.
func controlFree[T string | []byte](v T) bool {
	for i := range len(v) {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// isTokenByte reports whether c may appear in a token (RFC 9110, 5.6.2).
func isTokenByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// equalFold compares two ASCII field names case-insensitively.
func equalFold[B, S string | []byte](b B, s S) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c, d := b[i], s[i]
		if c == d {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// hasToken reports whether a comma-separated list holds tok (case-insensitively).
func hasToken[T string | []byte](list []byte, tok T) bool {
	for len(list) > 0 {
		var item []byte
		if i := bytes.IndexByte(list, ','); i >= 0 {
			item, list = list[:i], list[i+1:]
		} else {
			item, list = list, nil
		}
		if equalFold(bytes.TrimSpace(item), tok) {
			return true
		}
	}
	return false
}

// parseLength reads a Content-Length value: decimal digits only.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil
}

// hopByHop reports whether a field belongs to one connection and so is not forwarded
// (RFC 9110, 7.6.1), beside those the Connection field names.
func hopByHop[T string | []byte](name T) bool {
	switch len(name) {
	case 2:
		return equalFold(name, "te")
	case 7:
		return equalFold(name, "upgrade") || equalFold(name, "trailer")
	case 10:
		return equalFold(name, "connection") || equalFold(name, "keep-alive")
	case 16:
		return equalFold(name, "proxy-connection")
	case 17:
		return equalFold(name, "transfer-encoding")
	case 18:
		return equalFold(name, "proxy-authenticate")
	case 19:
		return equalFold(name, "proxy-authorization")
	}
	return false
}

// listedIn reports whether name is one of the Connection field's tokens.
func listedIn(connection [][]byte, name []byte) bool {
	for _, v := range connection {
		if hasToken(v, name) {
			return true
		}
	}
	return false
}
