// A vCenter simulator for the deployment tests: govmomi's VPX model served over TLS on a
// loopback address with a fixed login. Prints the SDK URL on stdout, then serves until killed.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "loopback host:port to serve on")
	user := flag.String("user", "user", "login user name")
	password := flag.String("password", "pass", "login password")
	standalone := flag.Int("standalone-hosts", 1, "hosts outside the cluster")
	clusterHosts := flag.Int("cluster-hosts", 3, "hosts in the cluster")
	flag.Parse()

	model := simulator.VPX()
	model.Host = *standalone
	model.ClusterHost = *clusterHosts
	defer model.Remove()
	if err := model.Create(); err != nil {
		fmt.Fprintln(os.Stderr, "vcsim: create model:", err)
		os.Exit(1)
	}

	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, *password)}
	// An empty TLS config makes the server use its built-in localhost certificate.
	model.Service.TLS = new(tls.Config)
	model.Service.RegisterEndpoints = true
	server := model.Service.NewServer()
	defer server.Close()

	fmt.Println(server.URL.String())
	os.Stdout.Sync()

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	<-signals
}
