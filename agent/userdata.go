package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/notos-agent/notos-agent/internal/atomicfile"
)

// Paths of the user_data step, relative to --root.
const (
	UserDataPath    = "/run/notos-agent/user-data"
	UserDataRecord  = "/var/lib/notos-agent/user-data.instance"
	UserDataLogPath = "/var/log/notos-agent/user-data.log"
)

// UserDataKind says what user_data holds, judged from its first bytes as
// cloud-init does.
type UserDataKind string

const (
	UserDataNone        UserDataKind = "none"         // absent or only white space
	UserDataScript      UserDataKind = "script"       // #! — run once per instance
	UserDataCloudConfig UserDataKind = "cloud-config" // #cloud-config — not supported
	UserDataMIME        UserDataKind = "mime"         // MIME multipart — not supported
	UserDataGzip        UserDataKind = "gzip"         // compressed — not supported
	UserDataOther       UserDataKind = "other"        // #include, #cloud-boothook, plain data, ...
)

// DetectUserData tells what kind of user_data b is.
func DetectUserData(b []byte) UserDataKind {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	if len(bytes.TrimSpace(b)) == 0 {
		return UserDataNone
	}
	if bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		return UserDataGzip
	}
	switch {
	case bytes.HasPrefix(b, []byte("#!")):
		return UserDataScript
	case bytes.HasPrefix(b, []byte("#cloud-config")):
		return UserDataCloudConfig
	}
	// A MIME message starts with its headers; cloud-init's own
	// make-mime writes Content-Type first, others MIME-Version.
	head := strings.ToLower(string(b[:min(len(b), 200)]))
	if strings.HasPrefix(head, "content-type:") || strings.HasPrefix(head, "mime-version:") {
		return UserDataMIME
	}
	return UserDataOther
}

// userData is the user_data step's input.
type userData struct {
	Root       string
	Data       []byte
	InstanceID string
	// RunScripts is false with a --root other than "/": a script is
	// meant for the system it boots, not for the host of an image.
	RunScripts bool
	// Wait is how long to wait for the script (--userdata-wait); 0 starts
	// it and moves on.
	Wait time.Duration
}

// apply saves user_data, and runs it when it is a script this instance
// has not run yet. The data itself never reaches a log or the record.
func (u userData) apply(ctx context.Context, rec *Record) error {
	kind := DetectUserData(u.Data)
	rec.Fact("user_data", string(kind))
	saved := filepath.Join(u.Root, UserDataPath)
	if kind == UserDataNone {
		// A user-data file from an earlier run with another drive
		// would be a lie now.
		switch err := os.Remove(saved); {
		case err == nil:
			rec.Changed("removed %s", UserDataPath)
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("remove %s: %w", saved, err)
		}
		rec.Skip("no user_data")
		return nil
	}
	changed, err := atomicfile.Write(saved, u.Data, atomicfile.Options{Perm: 0o600, UID: -1, GID: -1, DirPerm: 0o755})
	if err != nil {
		return err
	}
	if changed {
		rec.Changed("wrote %s", UserDataPath)
	}
	rec.Fact("saved", UserDataPath)
	if kind != UserDataScript {
		rec.Summary("%d bytes of %s saved to %s; %s user_data is not supported", len(u.Data), kind, UserDataPath, kind)
		return nil
	}

	record := filepath.Join(u.Root, UserDataRecord)
	last, err := readRecord(record)
	if err != nil {
		return err
	}
	run, why := shouldRunScript(u.InstanceID, last)
	if !run {
		rec.Summary("script saved to %s, not run: %s", UserDataPath, why)
		return nil
	}
	if !u.RunScripts {
		rec.Summary("script saved to %s, not run: --root is not /", UserDataPath)
		return nil
	}
	// The record is written before the script starts: a script that
	// reboots or crashes the machine must not run again at every boot.
	if _, err := atomicfile.Write(record, []byte(u.InstanceID+"\n"), atomicfile.Options{Perm: 0o644, UID: -1, GID: -1, DirPerm: 0o755}); err != nil {
		return fmt.Errorf("not run: %w", err)
	}
	pid, exit, err := startScript(ctx, saved, u.Data, filepath.Join(u.Root, UserDataLogPath), u.InstanceID, u.Wait)
	if err != nil {
		// Nothing ran: put the record back so that the next boot tries.
		if rerr := restoreRecord(record, last); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	rec.Changed("recorded instance %s in %s", u.InstanceID, UserDataRecord)
	rec.Changed("started user_data script (pid %d)", pid)
	rec.Fact("pid", fmt.Sprint(pid))
	switch {
	case exit == nil:
		rec.Summary("script started in the background (pid %d), output in %s", pid, UserDataLogPath)
	case *exit != nil:
		return fmt.Errorf("user_data script (pid %d): %w; output in %s", pid, *exit, UserDataLogPath)
	default:
		rec.Summary("script ran (pid %d), output in %s", pid, UserDataLogPath)
	}
	return nil
}

// shouldRunScript applies the once-per-instance rule: a script runs when
// the record names another instance (or none), never twice for one.
func shouldRunScript(instanceID, recorded string) (bool, string) {
	switch {
	case instanceID == "":
		return false, "the drive gives no instance id, so once per instance cannot be kept"
	case recorded == instanceID:
		return false, "already run for instance " + instanceID
	}
	return true, ""
}

// readRecord returns the instance id recorded as having run user_data;
// "" when there is none.
func readRecord(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// restoreRecord puts back the record as it was before (last, or none).
func restoreRecord(path, last string) error {
	if last == "" {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove %s: %w", path, err)
		}
		return nil
	}
	_, err := atomicfile.Write(path, []byte(last+"\n"), atomicfile.Options{Perm: 0o644, UID: -1, GID: -1})
	return err
}

// interpreter splits a #! line the way the kernel does (fs/binfmt_script.c):
// the interpreter, then everything after it as one optional argument.
func interpreter(script []byte) (path, arg string, err error) {
	line, _, _ := bytes.Cut(script, []byte("\n"))
	s := strings.TrimSpace(strings.TrimPrefix(string(line), "#!"))
	s = strings.TrimSuffix(s, "\r")
	path, arg, _ = strings.Cut(s, " ")
	if path == "" {
		return "", "", errors.New("empty #! line")
	}
	return path, strings.TrimSpace(arg), nil
}

// startScript starts the saved script as a background child in its own
// session (so runit's stage-1 process group teardown does not reach it),
// its output appended to logPath, and waits for it at most wait. exit is
// nil when the script is still running, else points at its exit error.
func startScript(ctx context.Context, script string, data []byte, logPath, instanceID string, wait time.Duration) (pid int, exit *error, err error) {
	interp, arg, err := interpreter(data)
	if err != nil {
		return 0, nil, fmt.Errorf("user_data script: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return 0, nil, fmt.Errorf("create directory %s: %w", filepath.Dir(logPath), err)
	}
	// An append-only log the child writes as it runs: atomic replacement
	// does not apply.
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return 0, nil, fmt.Errorf("open %s: %w", logPath, err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== notos-agent: user_data for instance %s, started %s\n", instanceID, time.Now().UTC().Format(time.RFC3339))

	args := []string{script}
	if arg != "" {
		args = []string{arg, script}
	}
	// Not tied to ctx: the script outlives the run by design.
	cmd := exec.Command(interp, args...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = scriptEnv(os.Environ(), instanceID)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("start user_data script with %s: %w", interp, err)
	}
	pid = cmd.Process.Pid
	waited := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				waited <- fmt.Errorf("panic: %v", p)
			}
		}()
		waited <- cmd.Wait()
	}()
	if wait <= 0 {
		return pid, nil, nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case err := <-waited:
		return pid, &err, nil
	case <-timer.C:
	case <-ctx.Done():
	}
	return pid, nil, nil
}

// scriptEnv is the environment a user_data script gets: the agent's, with
// a PATH that finds the usual tools (runit's stage 1 may have none) and the
// instance id.
func scriptEnv(env []string, instanceID string) []string {
	out := make([]string, 0, len(env)+2)
	hasPath := false
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			hasPath = true
		}
		if !strings.HasPrefix(e, "INSTANCE_ID=") {
			out = append(out, e)
		}
	}
	if !hasPath {
		out = append(out, "PATH=/run/current-system/sw/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	return append(out, "INSTANCE_ID="+instanceID)
}
