package netns

import (
	"context"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

func TestVethBetweenNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := New(ctx, UniqueName("tna"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err := New(ctx, UniqueName("tnb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := Veth(ctx, a, "va", "10.231.0.1/24", b, "vb", "10.231.0.2/24"); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := a.Do(func() (err error) { ln, err = net.Listen("tcp", "10.231.0.1:0"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	out, err := b.Command(ctx, "busybox", "nc", "-w", "5", "10.231.0.1", itoa(ln.Addr().(*net.TCPAddr).Port)).Output()
	if err != nil {
		t.Fatalf("nc from namespace b: %v", err)
	}
	if string(out) != "hi" {
		t.Fatalf("got %q from namespace a, want hi", out)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
