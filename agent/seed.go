package agent

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxSeed bounds what is handed to the kernel from random_seed. Nova sends
// 512 bytes; the kernel mixes in whatever it is given, so more is waste.
const maxSeed = 4096

// randPoolInfo packs struct rand_pool_info (include/uapi/linux/random.h):
//
//	struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[0]; };
//
// entropy_count is in bits, buf_size in bytes, both in the machine's byte
// order, followed by the seed itself.
func randPoolInfo(seed []byte, creditBits int) []byte {
	b := make([]byte, 8+len(seed))
	binary.NativeEndian.PutUint32(b[0:4], uint32(int32(creditBits)))
	binary.NativeEndian.PutUint32(b[4:8], uint32(int32(len(seed))))
	copy(b[8:], seed)
	return b
}

// EntropyAdder hands seed bytes to the kernel's random pool; tests
// substitute a fake for the one ioctl that needs CAP_SYS_ADMIN.
type EntropyAdder interface {
	AddEntropy(seed []byte, creditBits int) error
}

// URandom adds entropy with ioctl(RNDADDENTROPY) on a /dev/urandom node.
type URandom struct{ Path string }

// AddEntropy mixes seed into the input pool and credits creditBits of
// entropy (drivers/char/random.c random_ioctl: needs CAP_SYS_ADMIN).
// Unlike a plain write to /dev/urandom, which mixes without crediting,
// this lets the pool count as seeded early in boot.
func (u URandom) AddEntropy(seed []byte, creditBits int) error {
	f, err := os.OpenFile(u.Path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", u.Path, err)
	}
	defer f.Close()
	info := randPoolInfo(seed, creditBits)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&info[0])))
	if errno != 0 {
		return fmt.Errorf("ioctl RNDADDENTROPY on %s: %w", u.Path, errno)
	}
	return nil
}

// seedKernel credits seed (at most maxSeed bytes, 8 bits a byte: the
// hypervisor made it from its own pool) and says how many bytes went in.
func seedKernel(a EntropyAdder, seed []byte) (int, error) {
	if len(seed) > maxSeed {
		seed = seed[:maxSeed]
	}
	if err := a.AddEntropy(seed, 8*len(seed)); err != nil {
		return 0, err
	}
	return len(seed), nil
}

// entropyAvail reads /proc/sys/kernel/random/entropy_avail; -1 when it
// cannot be read.
func entropyAvail(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}
