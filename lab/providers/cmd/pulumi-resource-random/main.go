// Command pulumi-resource-random is the lab-only stand-in for the Pulumi random provider plugin
// (see lab/providers/README.md): it implements exactly the resources kubeha uses.
package main

import (
	fw "kubeha.local/lab/providers/internal/framework"
	"kubeha.local/lab/providers/internal/randomprov"
)

func main() {
	fw.Serve("random", randomprov.Version, randomprov.Resources()...)
}
