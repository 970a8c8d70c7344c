// Package driver is the Nomad task driver plugin surface: schemas, config
// validation, fingerprint, the task lifecycle RPCs and recovery.
//
// # Configuration
//
// All schemas live in schema.go, each next to the raw struct Nomad decodes
// it into, as Nomad's exec2 driver keeps its specs in one short file. One
// file was chosen over a schema fragment per concern because the raw
// structs must stay flat (Nomad's decoder fills them field by field, and
// tests build them with composite literals), so a concern could not own
// its raw part without being embedded; and because one file shows every
// option, its name and its default at a glance, which is what the README
// tables document.
//
// Each concern owns its parser and the typed result: imageconfig.go (auth,
// trust, gc), security.go, netmode.go and netconfig.go (network), mounts.go.
// A parser takes only its own part of the raw struct (rawImageOptions,
// rawSecurityConfig, rawNetwork, rawMounts, rawTaskSecurity), cut out by
// config.go and taskconfig.go, which compose the parts into Config and
// TaskConfig. Helpers shared by the parsers are in parse.go and names.go.
// Files use what they need from files below them: schema.go, parse.go and
// names.go at the bottom, the concerns above them, config.go and
// taskconfig.go on top.
package driver
