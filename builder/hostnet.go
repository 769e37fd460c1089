package builder

import (
	"errors"

	nettypes "go.podman.io/common/libnetwork/types"
)

// hostNetwork satisfies buildah's network backend interface for builds that
// always use the host's network namespace. buildah otherwise insists on finding
// netavark or CNI plugins at start-up even when no network is ever set up.
// Every method that would configure a network refuses.
type hostNetwork struct{}

var errHostNetworkOnly = errors.New("imgctl builds use the host network; container networks are not supported")

func (hostNetwork) NetworkCreate(nettypes.Network, *nettypes.NetworkCreateOptions) (nettypes.Network, error) {
	return nettypes.Network{}, errHostNetworkOnly
}
func (hostNetwork) NetworkUpdate(string, nettypes.NetworkUpdateOptions) error {
	return errHostNetworkOnly
}
func (hostNetwork) NetworkRemove(string) error { return errHostNetworkOnly }
func (hostNetwork) NetworkList(...nettypes.FilterFunc) ([]nettypes.Network, error) {
	return nil, nil
}
func (hostNetwork) NetworkInspect(string) (nettypes.Network, error) {
	return nettypes.Network{}, errHostNetworkOnly
}
func (hostNetwork) Setup(string, nettypes.SetupOptions) (map[string]nettypes.StatusBlock, error) {
	return nil, errHostNetworkOnly
}
func (hostNetwork) Teardown(string, nettypes.TeardownOptions) error { return errHostNetworkOnly }
func (hostNetwork) RunInRootlessNetns(func() error) error           { return errHostNetworkOnly }
func (hostNetwork) RootlessNetnsInfo() (*nettypes.RootlessNetnsInfo, error) {
	return nil, errHostNetworkOnly
}
func (hostNetwork) Drivers() []string                 { return nil }
func (hostNetwork) DefaultNetworkName() string        { return "host" }
func (hostNetwork) NetworkInfo() nettypes.NetworkInfo { return nettypes.NetworkInfo{Backend: "host"} }
