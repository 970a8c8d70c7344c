package testbed

import (
	"fmt"
	"testing"
)

func TestSubnetsSkipTheHostsNetworks(t *testing.T) {
	if !hostPrefixes()["127.0.0.0/24"] {
		t.Fatalf("hostPrefixes() = %v, lacks loopback's 127.0.0.0/24", hostPrefixes())
	}
	onHost := map[string]bool{}
	for i := 0; i < 255; i++ {
		onHost[fmt.Sprintf("10.215.%d.0/24", i)] = true
	}
	s := &subnets{used: map[string]bool{}}
	for range 20 {
		_, subnet := s.pick(onHost)
		if subnet != "10.215.255.0/24" {
			t.Fatalf("picked %s, a network the host has", subnet)
		}
		s.give(subnet)
	}
}
