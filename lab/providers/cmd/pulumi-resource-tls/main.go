// Command pulumi-resource-tls is the lab-only stand-in for the Pulumi tls provider plugin
// (see lab/providers/README.md): it implements exactly the resources kubeha uses.
package main

import (
	fw "kubeha.local/lab/providers/internal/framework"
	"kubeha.local/lab/providers/internal/tlsprov"
)

func main() {
	fw.Serve("tls", tlsprov.Version, tlsprov.Resources()...)
}
