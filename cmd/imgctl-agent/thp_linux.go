package main

import "syscall"

// prSetTHPDisable is PR_SET_THP_DISABLE (linux/prctl.h).
const prSetTHPDisable = 41

// init turns transparent huge pages off for the agent's own memory: its heap
// is a few MiB, and in a loaded TCG guest two agents once sat in soft lockups
// for minutes, each zeroing a fresh 2 MiB heap page after switch-root.
func init() {
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetTHPDisable, 1, 0)
}
