// Command ndc-echo is a tiny TCP and UDP echo server for test images: it
// answers every TCP line and every UDP datagram with its -prefix followed
// by what it got.
package main

import (
	"bufio"
	"flag"
	"log"
	"net"
)

func main() {
	tcp := flag.String("tcp", "", "TCP address to listen on, such as :8080")
	udp := flag.String("udp", "", "UDP address to listen on, such as :9000")
	prefix := flag.String("prefix", "echo:", "prefix of every answer")
	flag.Parse()
	if *tcp == "" && *udp == "" {
		log.Fatal("ndc-echo: give -tcp, -udp or both")
	}
	if *udp != "" {
		pc, err := net.ListenPacket("udp", *udp)
		if err != nil {
			log.Fatalf("ndc-echo: %v", err)
		}
		go serveUDP(pc, *prefix)
	}
	if *tcp != "" {
		l, err := net.Listen("tcp", *tcp)
		if err != nil {
			log.Fatalf("ndc-echo: %v", err)
		}
		serveTCP(l, *prefix)
	}
	select {}
}

func serveUDP(pc net.PacketConn, prefix string) {
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			log.Fatalf("ndc-echo: %v", err)
		}
		_, _ = pc.WriteTo(append([]byte(prefix), buf[:n]...), addr)
	}
}

func serveTCP(l net.Listener, prefix string) {
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatalf("ndc-echo: %v", err)
		}
		go func() {
			defer c.Close()
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				if _, err := c.Write([]byte(prefix + sc.Text() + "\n")); err != nil {
					return
				}
			}
		}()
	}
}
