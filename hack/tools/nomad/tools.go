//go:build tools

// Package tools pins the Nomad agent built by hack/deps.sh.
package tools
