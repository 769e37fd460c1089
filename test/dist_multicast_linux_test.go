package test

import (
	"testing"

	"github.com/imgctl/imgctl/internal/testenv"
)

// TestMulticastStorm: four real agents receive one root image from the
// carousel of `imgctl serve` over a bridge, each receiver's link losing 1%
// of its packets (random drop; this kernel lacks netem) under a 50 Mbit/s
// tbf; the fourth node joins once half the image has been sent. Every node must end with a verified copy (the agents check
// each piece and the whole image against the manifest), the repairs must
// be counted by the service, and the late node must be carried by a second
// pass of the carousel.
func TestMulticastStorm(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "tc", "curl", "mount", "iptables")
	bin := imgctl(t)
	agent := buildAgent(t)
	c := mcastCase{n: 4, mbit: 50, mib: 24, loss: 1, late: 1}
	r := runMulticast(t, bin, agent, c, 0)
	t.Logf("T_last %.1fs (S/B %.1fs, R %.2f), egress/S %.2f, repair %d bytes (%.2f%% of S per node), %.0f%% of pieces by multicast, %d passes",
		r.TLast, r.Floor, r.R, r.EgressOverS, r.RepairBytes, 100*r.RepairOverS, 100*r.MulticastFraction, r.Passes)
	if len(r.Status) != 1 || len(r.Status[0].Nodes) != c.n {
		t.Fatalf("multicast status: %+v", r.Status)
	}
	st := r.Status[0]
	// The late node saw the second half first: the carousel went on into a
	// second pass for it (and stopped once nobody needed it).
	if st.BytesSent < r.S*11/10 {
		t.Errorf("sender: %d bytes in %d full passes; want over 1.1·S (%d)", st.BytesSent, st.Passes, r.S*11/10)
	}
	for _, n := range st.Nodes {
		if !n.Done || n.Held != st.Pieces || n.Multicast+n.Repaired != st.Pieces {
			t.Errorf("%s: %+v, want all %d pieces, each counted once", n.Node, n, st.Pieces)
		}
		// 1% loss of ~3000 datagrams a piece: every node repairs, and
		// chunk by chunk (far less than the image).
		if n.RepairBytes == 0 || n.RepairBytes > r.S/4 {
			t.Errorf("%s: %d repair bytes, want some and under S/4 (%d)", n.Node, n.RepairBytes, r.S/4)
		}
	}
	if r.MulticastFraction < 0 || r.RepairOverS > 0.2 {
		t.Errorf("repair %.1f%% of S per node: chunk repair should stay near the loss rate", 100*r.RepairOverS)
	}
}
