// IPv4 helpers on top of ipaddr.js: parsing with a reason, CIDR containment, overlap, offsets.
import * as ipaddr from "ipaddr.js";

export interface Cidr {
    text: string;
    network: ipaddr.IPv4;
    prefix: number;
}

export function parseIpv4(text: string): ipaddr.IPv4 | undefined {
    return ipaddr.IPv4.isValidFourPartDecimal(text) ? ipaddr.IPv4.parse(text) : undefined;
}

/** Parses "a.b.c.d/n"; the address must be the network address (no host bits set). */
export function parseCidr(text: string): Cidr | string {
    if (!ipaddr.IPv4.isValidCIDRFourPartDecimal(text)) return "not an IPv4 CIDR like 10.254.0.0/16";
    const [addr, prefix] = ipaddr.IPv4.parseCIDR(text);
    const network = ipaddr.IPv4.networkAddressFromCIDR(text);
    if (addr.toString() !== network.toString()) return `has host bits set (did you mean ${network.toString()}/${prefix}?)`;
    return { text, network, prefix };
}

export function contains(cidr: Cidr, ip: ipaddr.IPv4): boolean {
    return ip.match(cidr.network, cidr.prefix);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
    return contains(a, b.network) || contains(b, a.network);
}

function toInt(ip: ipaddr.IPv4): number {
    return ip.octets.reduce((n, o) => n * 256 + o, 0);
}

function fromInt(n: number): ipaddr.IPv4 {
    return new ipaddr.IPv4([24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256));
}

/** The address `offset` after the network address (offset 1 = first usable). */
export function nthAddress(cidr: Cidr, offset: number): string {
    return fromInt(toInt(cidr.network) + offset).toString();
}

export function broadcastAddress(cidr: Cidr): string {
    return ipaddr.IPv4.broadcastAddressFromCIDR(cidr.text).toString();
}
