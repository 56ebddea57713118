package mkdrive

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
)

// ReadKeys reads the authorized_keys file at path (see ParseAuthorizedKeys).
func ReadKeys(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	return ParseAuthorizedKeys(path, b)
}

// ParseAuthorizedKeys returns the keys of an authorized_keys file, one line
// each in the form "TYPE BASE64[ COMMENT]". Blank lines and # comments are
// skipped. A line that is not a key, or that carries options (from="...",
// restrict, ...), is an error naming name and the line number: cloud
// metadata has no place for options, and dropping them silently would lift
// a restriction the file asked for.
func ParseAuthorizedKeys(name string, data []byte) ([]string, error) {
	var keys []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20) // a 16384-bit RSA key is ~2.8 KB; leave room
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pub, comment, options, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: parse SSH public key: %w", name, n, err)
		}
		if len(options) > 0 {
			return nil, fmt.Errorf("%s:%d: key options %q cannot be carried by cloud metadata", name, n, strings.Join(options, ","))
		}
		k := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n")
		if comment != "" {
			k += " " + comment
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no SSH public key", name)
	}
	return keys, nil
}
