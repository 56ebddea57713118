package main

import (
	"encoding/json"
	"io"
	"time"

	"github.com/notos-agent/notos-agent/agent"
)

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", "[--root DIR] [--json]",
		"Print what the last run did (from /run/notos-agent/state.json), the saved DHCP\n"+
			"leases and their expiry, and the host name and SSH keys in effect. Exit 1 when\n"+
			"there is no readable state.json.", stderr)
	root := fs.String("root", "/", "root directory of the system")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument %q", fs.Arg(0))
	}
	st := agent.ReadStatus(*root)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return fail(stderr, "status", err)
		}
	} else {
		st.WriteText(stdout, time.Now())
	}
	if st.State == nil {
		return 1
	}
	return 0
}
