//go:build windows

package main

import (
	"os"

	"golang.org/x/sys/windows"
)

// The release build for Windows is a GUI-subsystem program (linked with
// -H=windowsgui) so that double-clicking it opens no console window. Windows
// gives such a program no console, so `mailferry.exe serve` typed into
// cmd.exe or PowerShell would print nothing. Before main runs, a command
// other than the desktop assistant therefore attaches to the console of the
// process that started it (AttachConsole(ATTACH_PARENT_PROCESS)) and points
// every standard stream the parent did not redirect at that console. Streams
// that the parent did redirect (`mailferry.exe status --json > s.json`, a
// pipe) are valid handles already and are left alone. Started without a
// parent console (from Explorer, a shortcut, a service wrapper) nothing
// changes. The assistant itself never attaches: closing the console would
// then close the assistant.
//
// cmd.exe and PowerShell do not wait for a GUI-subsystem program, so the
// prompt comes back at once and the output follows it; `start /wait /b
// mailferry.exe serve` (cmd.exe) or `Start-Process -Wait -NoNewWindow`
// (PowerShell) make them wait, which matters for commands that read a
// password from the console.
func init() {
	if len(os.Args) < 2 || os.Args[1] == "gui" {
		return
	}
	attachParentConsole()
}

// attachParentConsole attaches to the parent's console if any standard
// stream is missing, and reopens the missing ones on that console.
func attachParentConsole() {
	std := []struct {
		id   uint32
		file **os.File
		name string
		conn string
	}{
		{windows.STD_INPUT_HANDLE, &os.Stdin, "/dev/stdin", "CONIN$"},
		{windows.STD_OUTPUT_HANDLE, &os.Stdout, "/dev/stdout", "CONOUT$"},
		{windows.STD_ERROR_HANDLE, &os.Stderr, "/dev/stderr", "CONOUT$"},
	}
	missing := false
	for _, s := range std {
		if !validStdHandle(s.id) {
			missing = true
		}
	}
	if !missing || attachConsole(attachParentProcess) != nil {
		return
	}
	for _, s := range std {
		if validStdHandle(s.id) {
			continue
		}
		name, err := windows.UTF16PtrFromString(s.conn)
		if err != nil {
			continue
		}
		h, err := windows.CreateFile(name,
			windows.GENERIC_READ|windows.GENERIC_WRITE,
			windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE,
			nil, windows.OPEN_EXISTING, 0, 0)
		if err != nil {
			continue
		}
		_ = windows.SetStdHandle(s.id, h)
		*s.file = os.NewFile(uintptr(h), s.name)
	}
}

// validStdHandle reports whether the standard handle id refers to something
// (a console, file or pipe) rather than being absent.
func validStdHandle(id uint32) bool {
	h, err := windows.GetStdHandle(id)
	if err != nil || h == 0 || h == windows.InvalidHandle {
		return false
	}
	t, err := windows.GetFileType(h)
	return err == nil && t != windows.FILE_TYPE_UNKNOWN
}

// attachParentProcess is ATTACH_PARENT_PROCESS ((DWORD)-1) for AttachConsole.
const attachParentProcess = ^uint32(0)

// attachConsole calls kernel32's AttachConsole(pid), which
// golang.org/x/sys/windows does not wrap (kernel32 is loaded from the system
// directory only). It fails when the process already has a console or the
// parent has none.
func attachConsole(pid uint32) error {
	proc := windows.NewLazySystemDLL("kernel32.dll").NewProc("AttachConsole")
	if err := proc.Find(); err != nil {
		return err
	}
	r, _, err := proc.Call(uintptr(pid))
	if r == 0 {
		return err
	}
	return nil
}
