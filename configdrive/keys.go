package configdrive

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// keyCandidate is one line that claims to be a login key, with the name it
// will be known by.
type keyCandidate struct {
	name string
	text string
}

// publicKeysField decodes a public_keys value in any of its shapes: a map
// whose values are a string (possibly several lines) or a list of strings
// (Nova), a list of strings (DigitalOcean), a single string, "" or null.
// field names the JSON field in errors. name(i, key) gives a candidate's
// name from its position and map key ("" for lists and strings).
func publicKeysField(field string, raw json.RawMessage, name func(key string, i int) string) ([]keyCandidate, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	switch jsonKind(raw) {
	case "null":
		return nil, nil
	case "string":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("field %s: %w", field, err)
		}
		return splitKeys(s, "", name), nil
	case "array":
		list, err := stringList(field, raw)
		if err != nil {
			return nil, err
		}
		return splitKeys(strings.Join(list, "\n"), "", name), nil
	case "object":
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("field %s: %w", field, err)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out []keyCandidate
		for _, k := range keys {
			v := m[k]
			var text string
			switch jsonKind(v) {
			case "null":
				continue
			case "string":
				if err := json.Unmarshal(v, &text); err != nil {
					return nil, fmt.Errorf("field %s[%q]: %w", field, k, err)
				}
			case "array":
				list, err := stringList(fmt.Sprintf("%s[%q]", field, k), v)
				if err != nil {
					return nil, err
				}
				text = strings.Join(list, "\n")
			default:
				return nil, fmt.Errorf("field %s[%q]: got JSON %s, want string or list", field, k, jsonKind(v))
			}
			out = append(out, splitKeys(text, k, name)...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("field %s: got JSON %s, want object, list or string", field, jsonKind(raw))
}

func stringList(field string, raw json.RawMessage) ([]string, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("field %s: %w", field, err)
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		if jsonKind(it) == "null" {
			continue
		}
		var s string
		if jsonKind(it) != "string" || json.Unmarshal(it, &s) != nil {
			return nil, fmt.Errorf("field %s[%d]: got JSON %s, want string", field, i, jsonKind(it))
		}
		out = append(out, s)
	}
	return out, nil
}

// splitKeys cuts text into key lines: CR stripped (values written on
// Windows, or copied from a web form), blank and # comment lines dropped.
func splitKeys(text, key string, name func(key string, i int) string) []keyCandidate {
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(strings.ReplaceAll(l, "\r", ""))
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		lines = append(lines, l)
	}
	out := make([]keyCandidate, len(lines))
	for i, l := range lines {
		n := name(key, i)
		if key != "" && len(lines) > 1 {
			n += "/" + strconv.Itoa(i)
		}
		out[i] = keyCandidate{name: n, text: l}
	}
	return out
}

// validateKeys parses each candidate with x/crypto/ssh, keeps the first of
// each key blob, and returns the keys sorted by name along with the ones
// skipped. Warnings name the key, never its text.
func validateKeys(cands []keyCandidate) (keys []PublicKey, skipped []SkippedKey, warnings []string) {
	seen := map[string]bool{} // key blobs already kept
	for _, c := range cands {
		pub, comment, options, _, err := ssh.ParseAuthorizedKey([]byte(c.text))
		if err != nil {
			reason := "not an SSH public key: " + err.Error()
			skipped = append(skipped, SkippedKey{Name: c.name, Reason: reason})
			warnings = append(warnings, fmt.Sprintf("key %q skipped: %s", c.name, reason))
			continue
		}
		blob := string(pub.Marshal())
		// Nova sends each key twice (public_keys and keys): not worth a warning.
		if seen[blob] {
			continue
		}
		seen[blob] = true
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
		if len(options) > 0 {
			line = strings.Join(options, ",") + " " + line
		}
		if comment != "" {
			line += " " + comment
		}
		keys = append(keys, PublicKey{
			Name:        c.name,
			Line:        line,
			Type:        pub.Type(),
			Fingerprint: ssh.FingerprintSHA256(pub),
		})
	}
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].Name < keys[j].Name })
	return keys, skipped, warnings
}
