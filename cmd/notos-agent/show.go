package main

import (
	"io"

	"github.com/notos-agent/notos-agent/agent"
)

func cmdShow(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("show", "[--drive PATH | --label L] [--drive-wait D] [--json]",
		"Find the config drive and print what it says: source, version directory,\n"+
			"instance id, the host name and keys that `keys` would install, keys skipped\n"+
			"and why, and the network entries. admin_pass and user_data are only ever\n"+
			"shown as present or absent. Changes nothing.", stderr)
	drive := driveFlags(fs)
	asJSON := fs.Bool("json", false, "print one JSON object")
	md, code := loadDrive(fs, drive, args, stdout, stderr)
	if md == nil {
		return code
	}
	r := agent.NewShowReport(md)
	var err error
	if *asJSON {
		err = r.WriteJSON(stdout)
	} else {
		err = r.WriteText(stdout)
	}
	if err != nil {
		return fail(stderr, "show", err)
	}
	return 0
}
