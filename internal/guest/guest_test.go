package guest

import (
	"os/exec"
	"strings"
	"testing"
)

// The run arguments reach the agent as the words they were, whatever
// they hold.
func TestShellQuote(t *testing.T) {
	args := []string{"--timeout", "20s", "it's", "$HOME", "a b", ""}
	out, err := exec.Command("sh", "-c", `for a in `+shellQuote(args)+`; do printf '[%s]' "$a"; done`).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "[--timeout][20s][it's][$HOME][a b][]"; got != want {
		t.Errorf("shell words = %s, want %s", got, want)
	}
}

// The examples the guest runs are found in the source tree.
func TestExample(t *testing.T) {
	for _, name := range []string{"runit/1", "runit/sv/notos-net/run"} {
		if b := Example(t, name); !strings.HasPrefix(string(b), "#!/bin/sh\n") {
			t.Errorf("examples/%s does not start with #!/bin/sh: %.40q", name, b)
		}
	}
}
