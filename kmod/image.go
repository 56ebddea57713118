package kmod

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// insert loads the module file at p (a system path, under Root) and returns
// the outcome, how it was loaded and, on failure, why.
func (r *run) insert(m, p, params string) (Outcome, string, error) {
	f, fi, err := openRegular(r.path(p))
	if err != nil {
		return Failed, "", err
	}
	defer f.Close()
	if fi.Size() > MaxImageSize {
		return Failed, "", fmt.Errorf("%s: %w: %d bytes, limit %d", p, ErrTooLarge, fi.Size(), MaxImageSize)
	}
	fd := int(f.Fd())
	compressed := !strings.HasSuffix(p, ".ko")
	via := "finit_module"
	var flags int
	if compressed {
		// Kernels built with CONFIG_MODULE_DECOMPRESS (5.17+) decompress
		// the file themselves when asked.
		flags = unix.MODULE_INIT_COMPRESSED_FILE
		via = "finit_module, decompressed by the kernel"
	}
	err = r.kernel.FinitModule(fd, params, flags)
	if compressed && refusedCompressed(err) || errors.Is(err, unix.ENOSYS) {
		var image []byte
		image, via, err = readImage(f, p)
		if err != nil {
			return Failed, "", err
		}
		err = r.kernel.InitModule(image, params)
	}
	switch {
	case err == nil:
		return Loaded, via, nil
	case errors.Is(err, unix.EEXIST):
		// EEXIST: another loader (udev, a parallel modprobe) won the race;
		// the module is there, which is all that was asked.
		return AlreadyLoaded, "", nil
	}
	call := "finit_module"
	if strings.HasPrefix(via, "init_module") {
		call = "init_module"
	}
	if hint := errnoHint(err); hint != "" {
		return Failed, "", fmt.Errorf("%s %s: %w (%s)", call, p, err, hint)
	}
	return Failed, "", fmt.Errorf("%s %s: %w", call, p, err)
}

// errnoHint explains the errnos whose names mislead when they come from
// the module loader (kernel/module/main.c), as kmod's modprobe does.
func errnoHint(err error) string {
	switch {
	case errors.Is(err, unix.ENOENT):
		return "unknown symbol in module or unknown parameter, see dmesg"
	case errors.Is(err, unix.ENOKEY), errors.Is(err, unix.EKEYREJECTED):
		return "module signature missing or rejected"
	case errors.Is(err, unix.EPERM):
		return "module loading disabled or not permitted"
	}
	return ""
}

// refusedCompressed reports whether finit_module's error means "this kernel
// does not decompress this file", after which userspace must:
//   - EOPNOTSUPP: built without CONFIG_MODULE_DECOMPRESS (Debian 12's 6.1);
//     kernel/module/internal.h's module_decompress stub returns it;
//   - EINVAL: a kernel older than 5.17 rejects the unknown flag; one that
//     decompresses another format rejects the file's magic; and its xz
//     decoder fails on what it cannot decode (kernel/module/decompress.c,
//     "decompression failed with status N").
//
// A genuinely bad module under EINVAL is then refused a second time, by
// init_module, with its own error.
func refusedCompressed(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)
}

// Magic numbers at the start of compressed files.
var (
	xzMagic   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	gzipMagic = []byte{0x1f, 0x8b}
)

// readImage reads a module image from f, decompressing it by its magic
// number (not its name), bounded by MaxImageSize. via says how.
func readImage(f *os.File, p string) (image []byte, via string, err error) {
	var head [6]byte
	n, err := f.ReadAt(head[:], 0)
	if err != nil && err != io.EOF {
		return nil, "", fmt.Errorf("read %s: %w", p, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, "", fmt.Errorf("seek %s: %w", p, err)
	}
	var rd io.Reader = f
	format := ""
	switch h := head[:n]; {
	case bytes.HasPrefix(h, xzMagic):
		format = "xz"
		compressed, err := io.ReadAll(io.LimitReader(f, MaxImageSize+1))
		if err != nil {
			return nil, "", fmt.Errorf("read %s: %w", p, err)
		}
		if len(compressed) > MaxImageSize {
			return nil, "", fmt.Errorf("xz %s: %w: over %d bytes", p, ErrTooLarge, MaxImageSize)
		}
		if err := checkXZ(compressed, MaxImageSize); err != nil {
			return nil, "", fmt.Errorf("xz %s: %w", p, err)
		}
		x, err := xz.NewReader(bytes.NewReader(compressed))
		if err != nil {
			return nil, "", fmt.Errorf("xz %s: %w", p, err)
		}
		rd = x
	case bytes.HasPrefix(h, zstdMagic):
		format = "zstd"
		z, err := zstd.NewReader(f,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(MaxImageSize),
			zstd.WithDecoderMaxWindow(MaxImageSize))
		if err != nil {
			return nil, "", fmt.Errorf("zstd %s: %w", p, err)
		}
		defer z.Close()
		rd = z
	case bytes.HasPrefix(h, gzipMagic):
		format = "gzip"
		g, err := gzip.NewReader(f)
		if err != nil {
			return nil, "", fmt.Errorf("gzip %s: %w", p, err)
		}
		rd = g
	}
	image, err = io.ReadAll(io.LimitReader(rd, MaxImageSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("%s %s: %w", orPlain(format), p, err)
	}
	if len(image) > MaxImageSize {
		return nil, "", fmt.Errorf("%s %s: %w: image over %d bytes", orPlain(format), p, ErrTooLarge, MaxImageSize)
	}
	if format == "" {
		return image, "init_module", nil
	}
	return image, "init_module, " + format + " decompressed here", nil
}

func orPlain(format string) string {
	if format == "" {
		return "read"
	}
	return format
}
