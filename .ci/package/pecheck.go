//go:build ignore

// Pecheck checks that a file is what `make package` promises for Windows: a
// PE32+ executable for x86-64 (IMAGE_FILE_MACHINE_AMD64, optional header
// magic 0x20b), for the GUI subsystem (IMAGE_SUBSYSTEM_WINDOWS_GUI, so no
// console window opens), with an icon (RT_GROUP_ICON and RT_ICON), version
// information (RT_VERSION) naming the product, and a manifest (RT_MANIFEST)
// in its resources.
//
// Usage: go run .ci/package/pecheck.go [-product NAME] FILE.exe
//
// It prints what it found and exits 1 naming every check that failed.
// The resource directory layout is the one of the PE/COFF specification,
// section 6.9 (".rsrc Section"): a tree of type, name and language levels.
package main

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"unicode/utf16"
)

// Resource types (winuser.h).
const (
	rtIcon      = 3
	rtGroupIcon = 14
	rtVersion   = 16
	rtManifest  = 24
)

func main() {
	product := flag.String("product", "Mailferry", "product name the version information must carry")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: go run .ci/package/pecheck.go [-product NAME] FILE.exe")
		os.Exit(2)
	}
	problems, err := check(flag.Arg(0), *product)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pecheck:", err)
		os.Exit(1)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "pecheck: FAIL:", p)
		}
		os.Exit(1)
	}
	fmt.Println("pecheck: ok:", flag.Arg(0))
}

// check returns the failed checks of the file at path.
func check(path, product string) ([]string, error) {
	f, err := pe.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s is not a PE file: %w", path, err)
	}
	defer f.Close()
	var problems []string
	fail := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	fmt.Printf("machine 0x%x\n", f.Machine)
	if f.Machine != pe.IMAGE_FILE_MACHINE_AMD64 {
		fail("machine is 0x%x, want IMAGE_FILE_MACHINE_AMD64 (0x8664)", f.Machine)
	}
	oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok {
		fail("optional header is %T, want PE32+ (OptionalHeader64)", f.OptionalHeader)
		return problems, nil
	}
	fmt.Printf("optional header magic 0x%x, subsystem %d\n", oh.Magic, oh.Subsystem)
	if oh.Magic != 0x20b {
		fail("optional header magic 0x%x, want 0x20b (PE32+)", oh.Magic)
	}
	if oh.Subsystem != pe.IMAGE_SUBSYSTEM_WINDOWS_GUI {
		fail("subsystem %d, want IMAGE_SUBSYSTEM_WINDOWS_GUI (%d)", oh.Subsystem, pe.IMAGE_SUBSYSTEM_WINDOWS_GUI)
	}

	res, err := resources(f, oh)
	if err != nil {
		fail("resources: %v", err)
		return problems, nil
	}
	for _, want := range []struct {
		typ  uint32
		name string
	}{{rtGroupIcon, "RT_GROUP_ICON"}, {rtIcon, "RT_ICON"}, {rtVersion, "RT_VERSION"}, {rtManifest, "RT_MANIFEST"}} {
		blobs := res[want.typ]
		total := 0
		for _, b := range blobs {
			total += len(b)
		}
		fmt.Printf("%-13s %d resource(s), %d bytes\n", want.name, len(blobs), total)
		if len(blobs) == 0 || total == 0 {
			fail("no %s resource", want.name)
		}
	}
	for _, b := range res[rtIcon] {
		// An RT_ICON is a PNG or a BITMAPINFOHEADER (size field 40).
		if !bytes.HasPrefix(b, []byte("\x89PNG")) && (len(b) < 4 || binary.LittleEndian.Uint32(b) != 40) {
			fail("an RT_ICON resource is neither PNG nor DIB")
		}
	}
	if v := res[rtVersion]; len(v) > 0 {
		needle := utf16le(product)
		if !bytes.Contains(v[0], needle) {
			fail("version information does not name the product %q", product)
		}
	}
	return problems, nil
}

// resources returns the data of every resource in f's .rsrc by type ID.
func resources(f *pe.File, oh *pe.OptionalHeader64) (map[uint32][][]byte, error) {
	if len(oh.DataDirectory) <= pe.IMAGE_DIRECTORY_ENTRY_RESOURCE {
		return nil, errors.New("no resource data directory")
	}
	dd := oh.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_RESOURCE]
	if dd.VirtualAddress == 0 || dd.Size == 0 {
		return nil, errors.New("empty resource data directory")
	}
	var sec *pe.Section
	for _, s := range f.Sections {
		if dd.VirtualAddress >= s.VirtualAddress && dd.VirtualAddress < s.VirtualAddress+s.VirtualSize {
			sec = s
		}
	}
	if sec == nil {
		return nil, errors.New("resource directory is in no section")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", sec.Name, err)
	}
	base := dd.VirtualAddress - sec.VirtualAddress
	r := rsrc{data: data, base: base, secVA: sec.VirtualAddress}
	out := map[uint32][][]byte{}
	types, err := r.dir(0)
	if err != nil {
		return nil, err
	}
	for _, t := range types {
		if !t.subdir {
			return nil, errors.New("type entry is not a directory")
		}
		names, err := r.dir(t.offset)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			langs := []entry{n}
			if n.subdir {
				if langs, err = r.dir(n.offset); err != nil {
					return nil, err
				}
			}
			for _, l := range langs {
				if l.subdir {
					return nil, errors.New("resource tree deeper than type/name/language")
				}
				b, err := r.leaf(l.offset)
				if err != nil {
					return nil, err
				}
				out[t.id] = append(out[t.id], b)
			}
		}
	}
	return out, nil
}

// rsrc reads the resource tree; offsets are relative to the tree's start.
type rsrc struct {
	data        []byte
	base, secVA uint32
}

// entry is one IMAGE_RESOURCE_DIRECTORY_ENTRY.
type entry struct {
	id     uint32 // numeric ID (or name offset with the high bit set)
	offset uint32
	subdir bool
}

func (r rsrc) bytes(off, n uint32) ([]byte, error) {
	start := uint64(r.base) + uint64(off)
	if start+uint64(n) > uint64(len(r.data)) {
		return nil, fmt.Errorf("resource offset %d+%d past the section", off, n)
	}
	return r.data[start : start+uint64(n)], nil
}

// dir reads the IMAGE_RESOURCE_DIRECTORY at off and its entries.
func (r rsrc) dir(off uint32) ([]entry, error) {
	h, err := r.bytes(off, 16)
	if err != nil {
		return nil, err
	}
	n := uint32(binary.LittleEndian.Uint16(h[12:])) + uint32(binary.LittleEndian.Uint16(h[14:]))
	if n > 4096 {
		return nil, fmt.Errorf("implausible %d resource entries", n)
	}
	b, err := r.bytes(off+16, 8*n)
	if err != nil {
		return nil, err
	}
	es := make([]entry, n)
	for i := range es {
		id := binary.LittleEndian.Uint32(b[8*i:])
		o := binary.LittleEndian.Uint32(b[8*i+4:])
		es[i] = entry{id: id, offset: o &^ (1 << 31), subdir: o&(1<<31) != 0}
	}
	return es, nil
}

// leaf reads the IMAGE_RESOURCE_DATA_ENTRY at off and returns its data.
func (r rsrc) leaf(off uint32) ([]byte, error) {
	h, err := r.bytes(off, 16)
	if err != nil {
		return nil, err
	}
	rva, size := binary.LittleEndian.Uint32(h), binary.LittleEndian.Uint32(h[4:])
	if rva < r.secVA+r.base {
		return nil, fmt.Errorf("resource data RVA 0x%x before the tree", rva)
	}
	return r.bytes(rva-r.secVA-r.base, size)
}

func utf16le(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	return b
}
