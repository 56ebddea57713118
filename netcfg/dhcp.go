package netcfg

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"golang.org/x/sys/unix"
)

// DefaultInitialDelay bounds the random wait before the first DISCOVER.
// RFC 2131 §4.4.1 suggests one to ten seconds so that clients started
// together do not answer in lockstep; a boot cannot afford that, and the
// ±1 s randomized retransmissions already spread clients whose first
// packet was lost. A few milliseconds still break the exact lockstep of a
// thousand VMs started by one API call, at a cost the boot does not notice.
const DefaultInitialDelay = 2 * time.Millisecond

// requestTries is how often a REQUEST is sent (RFC 2131 §4.4.1
// retransmission) before the client starts over with a DISCOVER.
const requestTries = 4

// requestedOptions is the parameter request list (option 55): everything
// ACKToPlan reads, plus NTP (42) for whoever reads the saved ACK.
var requestedOptions = []dhcpv4.OptionCode{
	dhcpv4.OptionSubnetMask,           // 1
	dhcpv4.OptionRouter,               // 3
	dhcpv4.OptionDomainNameServer,     // 6
	dhcpv4.OptionHostName,             // 12
	dhcpv4.OptionDomainName,           // 15
	dhcpv4.OptionInterfaceMTU,         // 26
	dhcpv4.OptionBroadcastAddress,     // 28
	dhcpv4.OptionNTPServers,           // 42
	dhcpv4.OptionIPAddressLeaseTime,   // 51
	dhcpv4.OptionServerIdentifier,     // 54
	dhcpv4.OptionRenewTimeValue,       // 58
	dhcpv4.OptionRebindingTimeValue,   // 59
	dhcpv4.OptionDNSDomainSearchList,  // 119
	dhcpv4.OptionClasslessStaticRoute, // 121
}

// ErrNAK is returned (wrapped) when a server answers a REQUEST with DHCPNAK.
var ErrNAK = errors.New("DHCPNAK")

// ErrNoAnswer is returned (wrapped) when no server answered in time.
var ErrNoAnswer = errors.New("no answer from a DHCP server")

// DHCPOptions tunes a DHCP client.
type DHCPOptions struct {
	// Hostname is sent as option 12 when not empty.
	Hostname string
	// InitialDelay is the upper bound of the random wait before the first
	// DISCOVER; zero means DefaultInitialDelay, negative means none.
	InitialDelay time.Duration
	// Logf, when set, gets one line per exchange.
	Logf func(format string, args ...any)
	// Hand, when set, gets a duplicate of each packet socket just before
	// the socket is closed. Dropping the last reference to a packet socket
	// waits for an RCU grace period (packet_release calls
	// synchronize_net): 5 to 20 ms, spent in the exit of the process that
	// drops it. The `net` command hands the duplicates to a child that
	// outlives it, so that the boot does not wait for that (dhclient gets
	// the same by forking into the background while keeping its socket).
	Hand func(*os.File)
}

// RetransmitDelay is the wait after the attempt-th transmission (0 for the
// first) of a message before sending it again: RFC 2131 §4.1, 4 s doubled
// each time up to 64 s, randomized by ±1 s. r is uniform in [0, 1).
func RetransmitDelay(attempt int, r float64) time.Duration {
	d := 64 * time.Second
	if attempt < 4 {
		d = (4 * time.Second) << attempt
	}
	return d + time.Duration((2*r-1)*float64(time.Second))
}

// dhcpClient is one link's DHCP exchanges over a packet socket.
type dhcpClient struct {
	iface string
	hw    net.HardwareAddr
	c     *nclient4.Client
	raw   syscall.Conn // the packet socket under c
	o     DHCPOptions
}

// openDHCP opens a packet socket on iface, as the link has no address yet.
func openDHCP(iface string, o DHCPOptions) (*dhcpClient, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("find link %s: %w", iface, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("link %s: hardware address %q is not Ethernet", iface, ifi.HardwareAddr)
	}
	conn, err := nclient4.NewRawUDPConn(iface, nclient4.ClientPort)
	if err != nil {
		return nil, packetSocketError(iface, err)
	}
	// Retransmission is ours (RFC 2131 §4.1 with jitter): nclient4 sends
	// once per call and waits until the per-attempt context ends.
	c, err := nclient4.NewWithConn(conn, ifi.HardwareAddr, nclient4.WithRetry(1), nclient4.WithTimeout(time.Hour))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("start DHCP client on %s: %w", iface, err)
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	d := &dhcpClient{iface: iface, hw: ifi.HardwareAddr, c: c, o: o}
	if b, ok := conn.(*nclient4.BroadcastRawUDPConn); ok {
		d.raw, _ = b.PacketConn.(syscall.Conn)
	}
	return d, nil
}

// packetSocketError names the call and the link, and the module to load
// when the kernel has no AF_PACKET (EAFNOSUPPORT: af_packet not loaded).
func packetSocketError(iface string, err error) error {
	if errors.Is(err, unix.EAFNOSUPPORT) {
		return fmt.Errorf("open packet socket on %s: %w (kernel module af_packet missing?)", iface, err)
	}
	return fmt.Errorf("open packet socket on %s: %w", iface, err)
}

// Close releases the socket (see DHCPOptions.Hand for its cost).
func (d *dhcpClient) Close() error {
	d.hand()
	return d.c.Close()
}

// hand gives a duplicate of the packet socket to DHCPOptions.Hand.
func (d *dhcpClient) hand() {
	if d.o.Hand != nil && d.raw != nil {
		if f, err := dupFile(d.raw, "packet socket on "+d.iface); err == nil {
			d.o.Hand(f)
		} else {
			d.o.Logf("dhcp %s: %v", d.iface, err)
		}
	}
}

// dupFile duplicates the descriptor under c.
func dupFile(c syscall.Conn, name string) (*os.File, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("duplicate %s: %w", name, err)
	}
	var nfd int
	var derr error
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, fmt.Errorf("duplicate %s: %w", name, err)
	}
	if derr != nil {
		return nil, fmt.Errorf("duplicate %s: %w", name, derr)
	}
	return os.NewFile(uintptr(nfd), name), nil
}

func (d *dhcpClient) modifiers() []dhcpv4.Modifier { return modifiers(d.hw, d.o.Hostname) }

// modifiers are the options every REQUEST and DISCOVER of ours carries.
func modifiers(hw net.HardwareAddr, hostname string) []dhcpv4.Modifier {
	m := []dhcpv4.Modifier{
		dhcpv4.WithRequestedOptions(requestedOptions...),
		// RFC 2132 §9.14: type 1 (Ethernet) followed by the MAC address.
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(append([]byte{1}, hw...))),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(nclient4.MaxMessageSize)),
	}
	if hostname != "" {
		m = append(m, dhcpv4.WithOption(dhcpv4.OptHostName(hostname)))
	}
	return m
}

// exchange sends msg to dest and waits for a reply that match accepts,
// retransmitting after backoff(attempt, jitter) (RetransmitDelay: RFC 2131
// §4.1), at most tries times (0: until ctx ends). The secs field counts
// from start (RFC 2131 §2).
func (d *dhcpClient) exchange(ctx context.Context, dest *net.UDPAddr, msg *dhcpv4.DHCPv4, match nclient4.Matcher, tries int, start time.Time, backoff func(int, float64) time.Duration) (*dhcpv4.DHCPv4, error) {
	for attempt := 0; tries == 0 || attempt < tries; attempt++ {
		msg.NumSeconds = uint16(min(time.Since(start)/time.Second, 0xffff))
		actx, cancel := context.WithTimeout(ctx, backoff(attempt, rand.Float64()))
		reply, err := d.c.SendAndRead(actx, dest, msg, match)
		cancel()
		switch {
		case err == nil:
			return reply, nil
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%s on %s: %w: %w", msg.MessageType(), d.iface, ErrNoAnswer, ctx.Err())
		case !errors.Is(err, context.DeadlineExceeded):
			return nil, fmt.Errorf("send %s on %s: %w", msg.MessageType(), d.iface, err)
		}
		d.o.Logf("dhcp %s: no answer to %s (try %d), sending again", d.iface, msg.MessageType(), attempt+1)
	}
	return nil, fmt.Errorf("%s on %s: %w after %d tries", msg.MessageType(), d.iface, ErrNoAnswer, tries)
}

// acquire runs DISCOVER, OFFER, REQUEST, ACK (RFC 2131 §3.1) until it gets
// an ACK or ctx ends; a NAK or an unanswered REQUEST starts over.
func (d *dhcpClient) acquire(ctx context.Context) (*dhcpv4.DHCPv4, time.Time, error) {
	delay := d.o.InitialDelay
	if delay == 0 {
		delay = DefaultInitialDelay
	}
	if delay > 0 {
		t := time.NewTimer(rand.N(delay))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, time.Time{}, fmt.Errorf("dhcp on %s: %w", d.iface, ctx.Err())
		case <-t.C:
		}
	}
	start := time.Now()
	for {
		discover, err := dhcpv4.NewDiscovery(d.hw, d.modifiers()...)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("build DISCOVER for %s: %w", d.iface, err)
		}
		offer, err := d.exchange(ctx, nclient4.DefaultServers, discover, nclient4.IsMessageType(dhcpv4.MessageTypeOffer), 0, start, RetransmitDelay)
		if err != nil {
			return nil, time.Time{}, err
		}
		// RFC 2131 §3.1 step 3: the REQUEST (SELECTING) names the
		// server and the offered address, and is broadcast.
		req, err := dhcpv4.NewRequestFromOffer(offer, d.modifiers()...)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("build REQUEST for %s: %w", d.iface, err)
		}
		sent := time.Now()
		reply, err := d.exchange(ctx, nclient4.DefaultServers, req, nclient4.IsAll(
			nclient4.IsCorrectServer(offer.ServerIdentifier()),
			nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)), requestTries, start, RetransmitDelay)
		switch {
		case ctx.Err() != nil:
			return nil, time.Time{}, err
		case errors.Is(err, ErrNoAnswer):
			d.o.Logf("dhcp %s: %v: starting over", d.iface, err)
			continue
		case err != nil:
			return nil, time.Time{}, err
		case reply.MessageType() == dhcpv4.MessageTypeNak:
			// RFC 2131 §3.1 step 5: a NAK sends the client back to INIT.
			d.o.Logf("dhcp %s: NAK from %s (%q): starting over", d.iface, reply.ServerIdentifier(), reply.Message())
			continue
		}
		// RFC 2131 §4.4.5: lease times count from the REQUEST.
		return reply, sent, nil
	}
}

// AcquireLease gets a lease on iface by DISCOVER/OFFER/REQUEST/ACK over a
// packet socket, until ctx ends, and turns the ACK into a plan.
func AcquireLease(ctx context.Context, iface string, o DHCPOptions) (Plan, error) {
	p, _, err := RebootOrAcquire(ctx, iface, nil, o)
	return p, err
}

// RebootWait bounds the INIT-REBOOT attempt of RebootOrAcquire: a rerun on
// a booted system must not wait long for a server that does not know the
// lease (RFC 2131 §4.3.2 has a server that has no record of the client
// stay silent) before it starts over with DISCOVER.
const RebootWait = 1500 * time.Millisecond

// rebootDelay is the wait after the attempt-th INIT-REBOOT transmission:
// 300 ms doubled each time, randomized by ±10%, so that RebootWait holds
// three transmissions (at about 0, 0.3 and 0.9 s). RFC 2131 §4.1's 4 s
// first delay is a SHOULD for an exchange the client waits on; here DORA
// is the fallback, and a lost packet costs at most RebootWait.
func rebootDelay(attempt int, r float64) time.Duration {
	d := (300 * time.Millisecond) << attempt
	return d + time.Duration((r-0.5)*0.2*float64(d))
}

// RebootOrAcquire gets a lease on iface. With saved, a lease that has not
// expired, it first asks for that lease again by INIT-REBOOT (RFC 2131
// §3.2, §4.3.2), for at most RebootWait; on an ACK the lease is renewed
// (renewed is true). A NAK, no answer in time, or no saved lease: DISCOVER,
// OFFER, REQUEST, ACK until ctx ends. One packet socket serves both.
func RebootOrAcquire(ctx context.Context, iface string, saved *Lease, o DHCPOptions) (p Plan, renewed bool, err error) {
	d, err := openDHCP(iface, o)
	if err != nil {
		return Plan{}, false, err
	}
	defer func() {
		// The plan is applied while the kernel releases the socket.
		d.hand()
		go d.c.Close()
	}()
	if saved != nil {
		wait := RebootWait
		if dl, ok := ctx.Deadline(); ok {
			// Leave DORA most of the time that is left.
			wait = min(wait, time.Until(dl)/4)
		}
		rctx, cancel := context.WithTimeout(ctx, wait)
		d.o.Logf("dhcp %s: %s: asking for %s again", iface, InitReboot, saved.Address)
		ack, sent, err := d.reboot(rctx, saved, 0, rebootDelay)
		cancel()
		if err == nil {
			p, err := ACKToPlan(iface, ack, sent)
			if err == nil {
				return p, true, nil
			}
			d.o.Logf("dhcp %s: %s: %v: starting over with DISCOVER", iface, InitReboot, err)
		} else if ctx.Err() != nil {
			return Plan{}, false, err
		} else {
			d.o.Logf("dhcp %s: %s: %v: starting over with DISCOVER", iface, InitReboot, err)
		}
	}
	ack, sent, err := d.acquire(ctx)
	if err != nil {
		return Plan{}, false, err
	}
	p, err = ACKToPlan(iface, ack, sent)
	return p, false, err
}

// DHCPExchanger is the keeper's real DHCP traffic on one link.
type DHCPExchanger struct {
	Iface   string
	Options DHCPOptions
}

// Discover runs DISCOVER..ACK over a packet socket until ctx ends.
func (e *DHCPExchanger) Discover(ctx context.Context) (*dhcpv4.DHCPv4, time.Time, error) {
	d, err := openDHCP(e.Iface, e.Options)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer d.Close()
	return d.acquire(ctx)
}

// Request sends a REQUEST in the given state and waits for ACK or NAK
// until ctx ends. RENEWING and REBINDING go out on a UDP socket bound to
// the leased address, port 68: RFC 2131 §4.3.2 has the server trust ciaddr
// and answer it by unicast, and servers (dnsmasq among them) ignore a
// unicast REQUEST whose IP source is 0.0.0.0, which is what nclient4's
// packet socket would send. INIT-REBOOT has no usable address yet and
// goes over the packet socket.
func (e *DHCPExchanger) Request(ctx context.Context, kind RequestKind, l *Lease) (*dhcpv4.DHCPv4, error) {
	if kind == InitReboot {
		return e.initReboot(ctx, l)
	}
	c, hw, err := e.leasedConn(l)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// RFC 2131 §4.3.2 RENEWING/REBINDING: ciaddr set; no server
	// identifier, no requested address.
	req, err := dhcpv4.New(append([]dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithHwAddr(hw),
		dhcpv4.WithClientIP(l.Address.Addr().AsSlice()),
		dhcpv4.WithBroadcast(false),
	}, modifiers(hw, e.Options.Hostname)...)...)
	if err != nil {
		return nil, fmt.Errorf("build %s REQUEST for %s: %w", kind, e.Iface, err)
	}
	dest := &net.UDPAddr{IP: l.Server.AsSlice(), Port: nclient4.ServerPort}
	if kind == Rebinding {
		dest = nclient4.DefaultServers
	}
	// One transmission: the keeper times retransmissions (RFC 2131
	// §4.4.5), so the exchange waits until ctx ends.
	reply, err := c.SendAndRead(ctx, dest, req, nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak))
	if err != nil {
		return nil, fmt.Errorf("%s REQUEST to %s on %s: %w: %w", kind, dest.IP, e.Iface, ErrNoAnswer, err)
	}
	return ackOrNAK(reply, e.Iface)
}

func ackOrNAK(reply *dhcpv4.DHCPv4, iface string) (*dhcpv4.DHCPv4, error) {
	if reply.MessageType() == dhcpv4.MessageTypeNak {
		return nil, fmt.Errorf("%w from %s on %s: %q", ErrNAK, reply.ServerIdentifier(), iface, reply.Message())
	}
	return reply, nil
}

// initReboot asks for the old address again after the link came back.
func (e *DHCPExchanger) initReboot(ctx context.Context, l *Lease) (*dhcpv4.DHCPv4, error) {
	d, err := openDHCP(e.Iface, e.Options)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	reply, _, err := d.reboot(ctx, l, requestTries, RetransmitDelay)
	return reply, err
}

// reboot sends an INIT-REBOOT REQUEST for l's address (RFC 2131 §3.2,
// §4.3.2: option 50 set, ciaddr zero, no server identifier, broadcast) at
// most tries times (0: until ctx ends), and returns the ACK and when the
// REQUEST was first sent; a NAK is an error wrapping ErrNAK.
func (d *dhcpClient) reboot(ctx context.Context, l *Lease, tries int, backoff func(int, float64) time.Duration) (*dhcpv4.DHCPv4, time.Time, error) {
	req, err := dhcpv4.New(append([]dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithHwAddr(d.hw),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(l.Address.Addr().AsSlice())),
	}, d.modifiers()...)...)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("build INIT-REBOOT REQUEST for %s: %w", d.iface, err)
	}
	// RFC 2131 §4.4.5: lease times count from the REQUEST.
	sent := time.Now()
	reply, err := d.exchange(ctx, nclient4.DefaultServers, req, nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak), tries, sent, backoff)
	if err != nil {
		return nil, time.Time{}, err
	}
	reply, err = ackOrNAK(reply, d.iface)
	return reply, sent, err
}

// Release gives the lease back: DHCPRELEASE unicast from the leased
// address to the server (RFC 2131 §4.4.6).
func (e *DHCPExchanger) Release(ctx context.Context, l *Lease) error {
	c, hw, err := e.leasedConn(l)
	if err != nil {
		return err
	}
	defer c.Close()
	msg, err := dhcpv4.New(
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease),
		dhcpv4.WithHwAddr(hw),
		dhcpv4.WithClientIP(l.Address.Addr().AsSlice()),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(l.Server.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(append([]byte{1}, hw...))),
	)
	if err != nil {
		return fmt.Errorf("build RELEASE for %s: %w", e.Iface, err)
	}
	dest := &net.UDPAddr{IP: l.Server.AsSlice(), Port: nclient4.ServerPort}
	if _, err := c.conn.WriteTo(msg.ToBytes(), dest); err != nil {
		return fmt.Errorf("send RELEASE to %s on %s: %w", dest, e.Iface, err)
	}
	return nil
}

// leasedClient is a DHCP client on a UDP socket of the link, port 68,
// whose messages leave from the leased address.
type leasedClient struct {
	*nclient4.Client
	conn net.PacketConn
}

func (e *DHCPExchanger) leasedConn(l *Lease) (*leasedClient, net.HardwareAddr, error) {
	ifi, err := net.InterfaceByName(e.Iface)
	if err != nil {
		return nil, nil, fmt.Errorf("find link %s: %w", e.Iface, err)
	}
	// Bound to 0.0.0.0:68, not to the leased address: RFC 2131 §4.3.2 has
	// the server broadcast its DHCPNAK, which a socket bound to one
	// address never receives. The source address is set per message.
	addr := net.JoinHostPort("0.0.0.0", strconv.Itoa(nclient4.ClientPort))
	pc, err := udpSocket(e.Iface, nclient4.ClientPort)
	if err != nil {
		return nil, nil, fmt.Errorf("open UDP socket on %s %s: %w", e.Iface, addr, err)
	}
	conn := &fromConn{UDPConn: pc, oob: pktinfo(l.Address.Addr())}
	c, err := nclient4.NewWithConn(conn, ifi.HardwareAddr, nclient4.WithRetry(1), nclient4.WithTimeout(time.Hour))
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("start DHCP client on %s %s: %w", e.Iface, addr, err)
	}
	return &leasedClient{Client: c, conn: conn}, ifi.HardwareAddr, nil
}

// udpSocket opens a UDP socket on the link iface, bound to 0.0.0.0:port.
// It is made with unix.Socket, not net.ListenConfig: a listen address given
// as a string links in the DNS resolver (270 KB of the binary).
func udpSocket(iface string, port int) (*net.UDPConn, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	// The link, not the routing table, decides where a REBINDING
	// broadcast goes; SO_BROADCAST lets it be sent at all.
	err = errors.Join(
		unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, iface),
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1),
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1))
	if err == nil {
		err = os.NewSyscallError("bind", unix.Bind(fd, &unix.SockaddrInet4{Port: port}))
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "udp4")
	defer f.Close() // FilePacketConn works on a duplicate
	c, err := net.FilePacketConn(f)
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}

// fromConn sends every datagram from one source address (IP_PKTINFO).
type fromConn struct {
	*net.UDPConn
	oob []byte
}

func (c *fromConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("send to %v: not a UDP address", addr)
	}
	n, _, err := c.WriteMsgUDP(b, c.oob, ua)
	return n, err
}

// pktinfo is an IP_PKTINFO control message (ip(7)) that makes src the
// source address of a datagram.
func pktinfo(src netip.Addr) []byte {
	b := make([]byte, unix.CmsgSpace(unix.SizeofInet4Pktinfo))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.IPPROTO_IP
	h.Type = unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&b[unix.CmsgLen(0)]))
	pi.Spec_dst = src.As4()
	return b
}
