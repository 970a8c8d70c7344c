package driver

import (
	"sync"

	"github.com/containerd/containerd/v2/client"
)

// clients keeps one containerd connection per address and namespace for
// the plugin's lifetime. The handles of running tasks use the connection
// they were started or recovered with, so a SetConfig that replaces the
// runtime state must not close it: Shutdown closes them all.
type clients struct {
	mu    sync.Mutex
	byKey map[[2]string]*client.Client
}

// get is the connection for address and namespace, made with dial the
// first time.
func (c *clients) get(address, namespace string, dial func() (*client.Client, error)) (*client.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := [2]string{address, namespace}
	if cl, ok := c.byKey[key]; ok {
		return cl, nil
	}
	cl, err := dial()
	if err != nil {
		return nil, err
	}
	if c.byKey == nil {
		c.byKey = map[[2]string]*client.Client{}
	}
	c.byKey[key] = cl
	return cl, nil
}

// closeAll closes every connection.
func (c *clients) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, cl := range c.byKey {
		_ = cl.Close()
		delete(c.byKey, key)
	}
}
