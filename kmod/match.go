package kmod

import "strings"

// normalizePattern writes an alias pattern the way kmod's alias_normalize
// does: '-' becomes '_' except inside a bracket expression, where '-' is a
// range.
func normalizePattern(p string) string {
	b := []byte(p)
	inBracket := false
	for i, c := range b {
		switch {
		case c == '[':
			inBracket = true
		case c == ']':
			inBracket = false
		case c == '-' && !inBracket:
			b[i] = '_'
		}
	}
	return string(b)
}

// fnmatch reports whether name matches the shell pattern, as fnmatch(3)
// with no flags matches modules.alias patterns in kmod: '*' any string, '?'
// any byte, "[a-z]" and "[!a-z]" (or "[^a-z]") a byte class, '\' quotes the
// next byte. It backtracks only to the last '*', so its time is bounded by
// len(pattern)*len(name) whatever the pattern.
func fnmatch(pattern, name string) bool {
	p, n := 0, 0
	starP, starN := -1, -1
	for n < len(name) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				starP, starN = p, n
				p++
				continue
			case '?':
				p++
				n++
				continue
			case '[':
				if ok, width := matchClass(pattern[p:], name[n]); width > 0 {
					if ok {
						p += width
						n++
						continue
					}
					break
				}
				// An unclosed '[' is a literal, as in fnmatch(3).
				if name[n] == '[' {
					p++
					n++
					continue
				}
			case '\\':
				if p+1 < len(pattern) {
					if pattern[p+1] == name[n] {
						p += 2
						n++
						continue
					}
					break
				}
				if name[n] == '\\' {
					p++
					n++
					continue
				}
			default:
				if c == name[n] {
					p++
					n++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		// Let the last '*' take one more byte and try again from there.
		starN++
		p, n = starP+1, starN
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchClass matches byte c against the bracket expression at the start of
// class ("[...]..."). width is the expression's length, 0 when it has no
// closing ']' (then '[' is an ordinary byte).
func matchClass(class string, c byte) (ok bool, width int) {
	i := 1
	negate := false
	if i < len(class) && (class[i] == '!' || class[i] == '^') {
		negate = true
		i++
	}
	end := strings.IndexByte(class[i+min(1, len(class)-i):], ']')
	if end < 0 {
		return false, 0
	}
	// A ']' right after '[' or '[!' is a member, not the end.
	end += i + min(1, len(class)-i)
	for j := i; j < end; j++ {
		lo := class[j]
		if lo == '\\' && j+1 < end {
			j++
			lo = class[j]
		}
		hi := lo
		if j+2 < end && class[j+1] == '-' {
			hi = class[j+2]
			j += 2
		}
		if lo <= c && c <= hi {
			ok = true
		}
	}
	return ok != negate, end + 1
}
