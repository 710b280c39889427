import dns from 'node:dns';
import net from 'node:net';
import { DocsiftError } from '../../infra/errors.js';
import type { Config } from '../../config/index.js';

/**
 * Where deliveries may go. A callback URL comes from whoever enqueued the document, so without
 * a check it would make the worker POST to anything it can reach: Redis on loopback, a cloud
 * metadata endpoint on a link-local address, an admin page on the office network.
 *
 * - names: hosts a URL may name, exact (`erp.example.com`) or by suffix (`*.example.com`);
 *   queue webhook hosts are added, since an operator wrote them.
 * - networks: addresses that are not public (loopback, private, link-local, …) and still allowed,
 *   from IP and CIDR entries (`10.1.0.0/16`, `127.0.0.1`). A name is checked on every address it
 *   resolves to, and the connection goes to the address that was checked (no second lookup a
 *   rebinding DNS server could answer differently).
 */
export interface DeliveryPolicy {
  readonly names: readonly string[];
  readonly networks: net.BlockList;
  readonly networkEntries: readonly string[];
}

/** Addresses no delivery reaches unless an operator allows them by IP or CIDR. */
const NOT_PUBLIC: Array<[string, number, 'ipv4' | 'ipv6']> = [
  ['0.0.0.0', 8, 'ipv4'], ['10.0.0.0', 8, 'ipv4'], ['100.64.0.0', 10, 'ipv4'], ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'], ['172.16.0.0', 12, 'ipv4'], ['192.0.0.0', 24, 'ipv4'], ['192.168.0.0', 16, 'ipv4'],
  ['198.18.0.0', 15, 'ipv4'], ['224.0.0.0', 4, 'ipv4'], ['240.0.0.0', 4, 'ipv4'],
  ['::', 128, 'ipv6'], ['::1', 128, 'ipv6'], ['fc00::', 7, 'ipv6'], ['fe80::', 10, 'ipv6'], ['ff00::', 8, 'ipv6'],
];
const notPublic = new net.BlockList();
for (const [address, prefix, type] of NOT_PUBLIC) notPublic.addSubnet(address, prefix, type);

export function deliveryPolicy(entries: readonly string[], webhookUrls: readonly string[]): DeliveryPolicy {
  const networks = new net.BlockList();
  const names: string[] = [];
  const networkEntries: string[] = [];
  for (const entry of entries) {
    const [address, prefix] = entry.split('/');
    const type = net.isIP(address ?? '');
    if (type) {
      networks.addSubnet(address!, prefix === undefined ? (type === 4 ? 32 : 128) : Number(prefix), type === 4 ? 'ipv4' : 'ipv6');
      networkEntries.push(entry);
    } else {
      names.push(entry.toLowerCase());
    }
  }
  for (const url of webhookUrls) names.push(hostOf(new URL(url)));
  return { names, networks, networkEntries };
}

/** The URL's host, lowercased, without IPv6 brackets. */
function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
}

/** A name entry matches a name; an IP literal is allowed by an IP or CIDR entry that holds it. */
function nameAllowed(policy: DeliveryPolicy, host: string): boolean {
  const type = net.isIP(host);
  if (type) return policy.networks.check(host, type === 4 ? 'ipv4' : 'ipv6') || policy.names.includes(host);
  return policy.names.some((n) => n === host || (n.startsWith('*.') && host.endsWith(n.slice(1))));
}

/** IPv4 addresses written as IPv6 (::ffff:10.0.0.1) are judged as the IPv4 address they are. */
function addressAllowed(policy: DeliveryPolicy, address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  const ip = mapped ?? address;
  const type = net.isIP(ip) === 4 ? 'ipv4' : 'ipv6';
  return !notPublic.check(ip, type) || policy.networks.check(ip, type);
}

/**
 * Checks what can be checked without the network: an http(s) URL, no credentials in it, a host
 * the operator allowed, and (for an IP literal, which is never looked up) an allowed address.
 * Throws CALLBACK_NOT_ALLOWED.
 */
export function assertDestination(policy: DeliveryPolicy, raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new DocsiftError('CALLBACK_NOT_ALLOWED', 'the callback URL is not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DocsiftError('CALLBACK_NOT_ALLOWED', `${url.protocol} URLs are not delivered to; use http or https`);
  if (url.username || url.password) throw new DocsiftError('CALLBACK_NOT_ALLOWED', 'the callback URL carries credentials; put a token in the path or query, or verify the signature');
  const host = hostOf(url);
  if (!nameAllowed(policy, host)) {
    const listed = [...policy.names, ...policy.networkEntries];
    throw new DocsiftError('CALLBACK_NOT_ALLOWED', `${host} is not an allowed callback host (DOCSIFT_CALLBACK_HOSTS${listed.length ? `: ${listed.join(', ')}` : ' is empty'})`);
  }
  if (net.isIP(host) && !addressAllowed(policy, host)) {
    throw new DocsiftError('CALLBACK_NOT_ALLOWED', `${host} is not a public address; allow it explicitly with an IP or CIDR entry in DOCSIFT_CALLBACK_HOSTS`);
  }
  return url;
}

/**
 * A `lookup` for http.request: resolves the name, refuses it when any address it resolves to is
 * not public and not allowed, and hands the connection the addresses it checked.
 */
export function checkedLookup(policy: DeliveryPolicy): net.LookupFunction {
  return ((hostname: string, options: dns.LookupOptions, callback: (err: Error | null, address: string | dns.LookupAddress[], family?: number) => void) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const refused = addresses.find((a) => !addressAllowed(policy, a.address));
      if (refused) {
        return callback(new DocsiftError('CALLBACK_NOT_ALLOWED', `${hostname} resolves to ${refused.address}, which is not a public address; allow it explicitly with an IP or CIDR entry in DOCSIFT_CALLBACK_HOSTS`), []);
      }
      if (options.all) return callback(null, addresses);
      return callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  }) as net.LookupFunction;
}

/** A delivery URL as logs and listings show it: no credentials, no query (tokens live there), no fragment. (Redis URLs: queue/connection.ts redactUrl.) */
export function deliveryUrlForLogs(raw: string): string {
  try {
    const url = new URL(raw);
    return `${url.protocol}//${url.host}${url.pathname}${url.search ? '?…' : ''}`;
  } catch {
    return '(not a URL)';
  }
}

/** Where this installation's deliveries may go: DOCSIFT_CALLBACK_HOSTS and every queue webhook's host. */
export function deliveryPolicyOf(config: Config): DeliveryPolicy {
  return deliveryPolicy(config.env.DOCSIFT_CALLBACK_HOSTS, [...config.queues.values()].flatMap((q) => (q.outputs.webhook ? [q.outputs.webhook.url] : [])));
}
