package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDetectUserData(t *testing.T) {
	tests := []struct {
		in   string
		want UserDataKind
	}{
		{"", UserDataNone},
		{" \n\t", UserDataNone},
		{"#!/bin/sh\necho hi\n", UserDataScript},
		{"\xef\xbb\xbf#!/bin/bash\n", UserDataScript},
		{"#cloud-config\npackages: [htop]\n", UserDataCloudConfig},
		{"Content-Type: multipart/mixed; boundary=\"===\"\nMIME-Version: 1.0\n", UserDataMIME},
		{"MIME-Version: 1.0\nContent-Type: multipart/mixed\n", UserDataMIME},
		{"\x1f\x8b\x08\x00rest", UserDataGzip},
		{"#include\nhttp://example.com/x\n", UserDataOther},
		{"#cloud-boothook\n", UserDataOther},
		{"just some data", UserDataOther},
		{" #!/bin/sh\n", UserDataOther}, // the kernel needs #! at byte 0
	}
	for _, tt := range tests {
		if got := DetectUserData([]byte(tt.in)); got != tt.want {
			t.Errorf("DetectUserData(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestShouldRunScript(t *testing.T) {
	tests := []struct {
		id, recorded string
		want         bool
		why          string
	}{
		{"i-1", "", true, ""},
		{"i-2", "i-1", true, ""},
		{"i-1", "i-1", false, "already run for instance i-1"},
		{"", "", false, "the drive gives no instance id, so once per instance cannot be kept"},
	}
	for _, tt := range tests {
		got, why := shouldRunScript(tt.id, tt.recorded)
		if got != tt.want || why != tt.why {
			t.Errorf("shouldRunScript(%q, %q) = %v, %q; want %v, %q", tt.id, tt.recorded, got, why, tt.want, tt.why)
		}
	}
}

func TestInterpreter(t *testing.T) {
	tests := []struct {
		in, path, arg string
		bad           bool
	}{
		{in: "#!/bin/sh\necho", path: "/bin/sh"},
		{in: "#! /bin/bash -eu\r\n", path: "/bin/bash", arg: "-eu"},
		{in: "#!/usr/bin/env python3 -u x\n", path: "/usr/bin/env", arg: "python3 -u x"},
		{in: "#!\n", bad: true},
	}
	for _, tt := range tests {
		p, a, err := interpreter([]byte(tt.in))
		if (err != nil) != tt.bad || p != tt.path || a != tt.arg {
			t.Errorf("interpreter(%q) = %q, %q, %v; want %q, %q, error %v", tt.in, p, a, err, tt.path, tt.arg, tt.bad)
		}
	}
}

func runUserData(t *testing.T, u userData) (StepResult, error) {
	t.Helper()
	rec := &Record{}
	err := u.apply(context.Background(), rec)
	return StepResult{Summary: rec.summary, Changes: rec.changes, Facts: rec.facts}, err
}

// The once-per-instance rule, with a real script: it runs for a new
// instance, not again for the same one, and again for the next.
func TestUserDataScriptOncePerInstance(t *testing.T) {
	root := t.TempDir()
	marker := filepath.Join(root, "ran")
	script := "#!/bin/sh\necho \"run for $INSTANCE_ID\" >> " + marker + "\necho to-the-log\n"
	u := userData{Root: root, Data: []byte(script), InstanceID: "i-1", RunScripts: true, Wait: time.Minute}

	res, err := runUserData(t, u)
	if err != nil {
		t.Fatalf("first run: %v", err)
	}
	if !strings.HasPrefix(res.Summary, "script ran (pid ") {
		t.Errorf("first run summary %q", res.Summary)
	}
	res, err = runUserData(t, u)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if want := "script saved to /run/notos-agent/user-data, not run: already run for instance i-1"; res.Summary != want || res.Changes != nil {
		t.Errorf("second run: summary %q, changes %v; want %q and no change", res.Summary, res.Changes, want)
	}
	u.InstanceID = "i-2"
	if _, err := runUserData(t, u); err != nil {
		t.Fatalf("new instance: %v", err)
	}

	got, _ := os.ReadFile(marker)
	if diff := cmp.Diff("run for i-1\nrun for i-2\n", string(got)); diff != "" {
		t.Errorf("script runs mismatch (-want +got):\n%s", diff)
	}
	rec, _ := os.ReadFile(filepath.Join(root, UserDataRecord))
	if string(rec) != "i-2\n" {
		t.Errorf("record = %q, want i-2", rec)
	}
	log, _ := os.ReadFile(filepath.Join(root, UserDataLogPath))
	if strings.Count(string(log), "to-the-log\n") != 2 || !strings.Contains(string(log), "user_data for instance i-1") {
		t.Errorf("log file holds:\n%s", log)
	}
	for _, p := range []string{UserDataPath, UserDataLogPath} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, err %v; want 0600", p, fi.Mode(), err)
		}
	}
}

// With --userdata-wait 0 the step returns while the script still runs, in
// its own session.
func TestUserDataScriptInBackground(t *testing.T) {
	root := t.TempDir()
	fifo := filepath.Join(root, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// The script blocks until the test opens the fifo for writing.
	script := "#!/bin/sh\necho \"sid $(cut -d' ' -f6 /proc/$$/stat) pid $$\"\nread x < " + fifo + "\necho released\n"
	u := userData{Root: root, Data: []byte(script), InstanceID: "i-1", RunScripts: true}
	res, err := runUserData(t, u)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Summary, "script started in the background (pid ") {
		t.Fatalf("summary %q", res.Summary)
	}
	// Release the script; opening blocks until it has opened its end.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("go\n")
	w.Close()
	pid := res.Facts["pid"]
	log, _ := os.ReadFile(filepath.Join(root, UserDataLogPath))
	if !strings.Contains(string(log), "sid "+pid+" pid "+pid) {
		t.Errorf("script is not a session leader; log:\n%s", log)
	}
}

func TestUserDataNotScripts(t *testing.T) {
	tests := []struct {
		name, data, id string
		runScripts     bool
		want           string
		skipped        bool
	}{
		{name: "cloud-config", data: "#cloud-config\n{}\n", id: "i", runScripts: true,
			want: "17 bytes of cloud-config saved to /run/notos-agent/user-data; cloud-config user_data is not supported"},
		{name: "mime", data: "MIME-Version: 1.0\n", id: "i", runScripts: true,
			want: "18 bytes of mime saved to /run/notos-agent/user-data; mime user_data is not supported"},
		{name: "script under another root", data: "#!/bin/sh\ntouch /should-not-exist\n", id: "i",
			want: "script saved to /run/notos-agent/user-data, not run: --root is not /"},
		{name: "no instance id", data: "#!/bin/sh\n", runScripts: true,
			want: "script saved to /run/notos-agent/user-data, not run: the drive gives no instance id, so once per instance cannot be kept"},
		{name: "empty", data: "", want: "no user_data", skipped: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			rec := &Record{}
			err := userData{Root: root, Data: []byte(tt.data), InstanceID: tt.id, RunScripts: tt.runScripts}.apply(context.Background(), rec)
			if err != nil {
				t.Fatal(err)
			}
			if rec.summary != tt.want || rec.skipped != tt.skipped {
				t.Errorf("summary %q (skipped %v), want %q (skipped %v)", rec.summary, rec.skipped, tt.want, tt.skipped)
			}
			if _, err := os.Stat(filepath.Join(root, UserDataRecord)); err == nil {
				t.Errorf("record written although nothing ran")
			}
			got, err := os.ReadFile(filepath.Join(root, UserDataPath))
			if tt.data != "" && string(got) != tt.data {
				t.Errorf("saved %q, %v; want %q", got, err, tt.data)
			}
		})
	}
}

// A script whose interpreter is missing did not run: the record is put
// back, so the next boot tries again.
func TestUserDataStartFailureKeepsRecord(t *testing.T) {
	root := t.TempDir()
	u := userData{Root: root, Data: []byte("#!/nonexistent/interp\n"), InstanceID: "i-1", RunScripts: true}
	if _, err := runUserData(t, u); err == nil || !strings.Contains(err.Error(), "start user_data script with /nonexistent/interp") {
		t.Errorf("error %v, want the start failure", err)
	}
	if _, err := os.Stat(filepath.Join(root, UserDataRecord)); !os.IsNotExist(err) {
		t.Errorf("record left behind after a failed start: %v", err)
	}
}
