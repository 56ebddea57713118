package kmod

import (
	"bytes"
	"errors"
	"fmt"
)

// The xz decoder allocates each block's LZMA2 dictionary at the size the
// block header asks for, up to 4 GiB: a hostile file of a few bytes could
// make it allocate more memory than the machine has, which the Go runtime
// does not survive. checkXZ reads every block header first (found through
// the index at the end of each stream, xz file format 1.1.0 §3, §4, §5)
// and refuses dictionaries larger than limit.
func checkXZ(b []byte, limit int64) error {
	end := len(b)
	for end > 0 {
		// Stream padding: zero bytes, a multiple of four (§2.2).
		for end >= 4 && bytes.Equal(b[end-4:end], []byte{0, 0, 0, 0}) {
			end -= 4
		}
		if end == 0 {
			break
		}
		start, err := checkXZStream(b[:end], limit)
		if err != nil {
			return err
		}
		end = start
	}
	return nil
}

var errXZ = errors.New("malformed xz file")

// checkXZStream checks the stream that ends at the end of b and returns
// where it starts.
func checkXZStream(b []byte, limit int64) (int, error) {
	const headerSize, footerSize = 12, 12
	if len(b) < headerSize+footerSize || !bytes.Equal(b[len(b)-2:], []byte("YZ")) {
		return 0, fmt.Errorf("%w: no stream footer", errXZ)
	}
	footer := b[len(b)-footerSize:]
	backward := (int64(footer[4]) | int64(footer[5])<<8 | int64(footer[6])<<16 | int64(footer[7])<<24 + 1) * 4
	indexStart := int64(len(b)-footerSize) - backward
	if indexStart < headerSize {
		return 0, fmt.Errorf("%w: index size %d", errXZ, backward)
	}
	index := b[indexStart : len(b)-footerSize]
	if index[0] != 0 {
		return 0, fmt.Errorf("%w: no index indicator", errXZ)
	}
	p := 1
	records, ok := multibyte(index, &p)
	if !ok || records > uint64(len(index)) {
		return 0, fmt.Errorf("%w: index record count", errXZ)
	}
	var blocks []int64 // padded block sizes, in order
	var total int64
	for range records {
		unpadded, ok1 := multibyte(index, &p)
		uncompressed, ok2 := multibyte(index, &p)
		if !ok1 || !ok2 || unpadded > uint64(len(b)) || uncompressed > uint64(limit) {
			return 0, fmt.Errorf("%w: index record", errXZ)
		}
		blocks = append(blocks, (int64(unpadded)+3)&^3)
		total += int64(uncompressed)
	}
	if total > limit {
		return 0, fmt.Errorf("xz: %w: %d bytes uncompressed, limit %d", ErrTooLarge, total, limit)
	}
	var size int64
	for _, s := range blocks {
		size += s
	}
	start := indexStart - size - headerSize
	if start < 0 || !bytes.HasPrefix(b[start:], xzMagic) {
		return 0, fmt.Errorf("%w: stream header not where the index puts it", errXZ)
	}
	pos := start + headerSize
	for _, s := range blocks {
		if err := checkXZBlockHeader(b[pos:pos+s], limit); err != nil {
			return 0, err
		}
		pos += s
	}
	return int(start), nil
}

// checkXZBlockHeader checks the LZMA2 dictionary size in a block header
// (§3.1): size byte, flags, optional sizes, then the filter flags.
func checkXZBlockHeader(block []byte, limit int64) error {
	if len(block) < 2 || block[0] == 0 {
		return fmt.Errorf("%w: block header", errXZ)
	}
	h := block[:min(len(block), (int(block[0])+1)*4)]
	flags := h[1]
	p := 2
	// Compressed and uncompressed sizes, when the flags say they are there.
	for _, bit := range []byte{0x40, 0x80} {
		if flags&bit == 0 {
			continue
		}
		if _, ok := multibyte(h, &p); !ok {
			return fmt.Errorf("%w: block header sizes", errXZ)
		}
	}
	for range int(flags&3) + 1 {
		id, ok1 := multibyte(h, &p)
		n, ok2 := multibyte(h, &p)
		if !ok1 || !ok2 || n > uint64(len(h)-p) {
			return fmt.Errorf("%w: filter flags", errXZ)
		}
		props := h[p : p+int(n)]
		p += int(n)
		// 0x21 is LZMA2, whose one property byte codes the dictionary
		// size: 2 or 3 times a power of two, 40 meaning 4 GiB - 1 (§5.3.1).
		if id == 0x21 && len(props) == 1 {
			bits := props[0] & 0x3f
			if bits > 40 {
				return fmt.Errorf("%w: LZMA2 dictionary code %d", errXZ, bits)
			}
			dict := int64(1)<<32 - 1
			if bits < 40 {
				dict = int64(2|bits&1) << (bits/2 + 11)
			}
			if dict > limit {
				return fmt.Errorf("xz: %w: LZMA2 dictionary of %d bytes, limit %d", ErrTooLarge, dict, limit)
			}
		}
	}
	return nil
}

// multibyte decodes an xz variable-length integer (§1.2) at b[*p].
func multibyte(b []byte, p *int) (uint64, bool) {
	var v uint64
	for i := 0; i < 9; i++ {
		if *p >= len(b) {
			return 0, false
		}
		c := b[*p]
		*p++
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, i == 0 || c != 0
		}
	}
	return 0, false
}
