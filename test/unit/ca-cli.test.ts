import { X509Certificate as NodeX509 } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeCertificate } from '../../agent/handlers/node.js';
import {
  caFiles,
  defaultCaDir,
  initCa,
  issueNode,
  NODE_CERT_DAYS,
  parseAddresses,
} from '../../connector/ca-cli.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mcp-ca-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const mode = (file: string) => statSync(file).mode & 0o777;
const DAY = 86_400_000;

describe('mcp ca init', () => {
  it('creates a CA certificate and a key only the operator can read', async () => {
    const files = await initCa(join(dir, 'ca'));
    expect(mode(files.key)).toBe(0o600);
    expect(mode(join(dir, 'ca'))).toBe(0o700);
    const cert = new x509.X509Certificate(readFileSync(files.cert, 'utf8'));
    expect(cert.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(true);
    expect(await cert.isSelfSigned()).toBe(true);
  });

  it('refuses to replace an existing CA and leaves it as it was', async () => {
    const files = await initCa(dir);
    const before = [readFileSync(files.cert, 'utf8'), readFileSync(files.key, 'utf8')];
    await expect(initCa(dir)).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: expect.stringContaining('already exists'),
    });
    expect([readFileSync(files.cert, 'utf8'), readFileSync(files.key, 'utf8')]).toEqual(before);
  });

  it('lives under the operator config dir by default', () => {
    expect(defaultCaDir({ HOME: '/home/op' })).toBe('/home/op/.config/mcp/ca');
    expect(defaultCaDir({ HOME: '/home/op', XDG_CONFIG_HOME: '/cfg' })).toBe('/cfg/mcp/ca');
  });
});

describe('mcp ca issue', () => {
  it('writes a key (0600) and a certificate for the node with IP and DNS SANs, signed by the CA', async () => {
    await initCa(dir);
    const issued = await issueNode(dir, 'node1', ['10.0.0.5,node1.lan', '2001:db8::5']);
    expect(issued.dir).toBe(join(dir, 'nodes', 'node1'));
    expect(mode(issued.key)).toBe(0o600);
    expect(readFileSync(issued.caCert, 'utf8')).toBe(readFileSync(caFiles(dir).cert, 'utf8'));

    const cert = new x509.X509Certificate(readFileSync(issued.cert, 'utf8'));
    expect(cert.subject).toBe('CN=node1');
    const sans = cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON();
    expect(sans).toEqual(
      expect.arrayContaining([
        { type: 'ip', value: '10.0.0.5' },
        { type: 'ip', value: '2001:db8::5' },
        { type: 'dns', value: 'node1.lan' },
      ]),
    );
    expect(sans).toHaveLength(3);
    const ca = new x509.X509Certificate(readFileSync(caFiles(dir).cert, 'utf8'));
    expect(await cert.verify({ publicKey: ca.publicKey, signatureOnly: true })).toBe(true);
    // What Node's TLS checks: the name the connector dials must be on the certificate.
    const node = new NodeX509(readFileSync(issued.cert));
    expect(node.checkIP('10.0.0.5')).toBe('10.0.0.5');
    expect(node.checkHost('node1.lan')).toBe('node1.lan');
    expect(node.checkHost('node2.lan')).toBeUndefined();
    expect(node.checkIssued(new NodeX509(readFileSync(caFiles(dir).cert)))).toBe(true);
  });

  it('is valid from now for 397 days, and the agent reports that expiry, subject and SANs', async () => {
    await initCa(dir);
    const issued = await issueNode(dir, 'node1', ['127.0.0.11']);
    const cert = new x509.X509Certificate(readFileSync(issued.cert, 'utf8'));
    expect(cert.notBefore.getTime()).toBeLessThanOrEqual(Date.now());
    const days = (cert.notAfter.getTime() - cert.notBefore.getTime()) / DAY;
    expect(days).toBe(NODE_CERT_DAYS);
    expect(issued.notAfter.getTime()).toBe(cert.notAfter.getTime());

    const described = describeCertificate(readFileSync(issued.cert));
    expect(described.tlsCertNotAfter?.getTime()).toBe(Math.floor(cert.notAfter.getTime() / 1000) * 1000);
    expect(described.tlsCertSubject).toBe('CN=node1');
    expect(described.tlsCertSans).toEqual(['IP Address:127.0.0.11']);
  });

  it('replaces the node files when issued again (renewal) with a new key', async () => {
    await initCa(dir);
    const first = await issueNode(dir, 'node1', ['10.0.0.5']);
    const firstKey = readFileSync(first.key, 'utf8');
    const second = await issueNode(dir, 'node1', ['10.0.0.5']);
    expect(readFileSync(second.key, 'utf8')).not.toBe(firstKey);
    expect(mode(second.key)).toBe(0o600);
  });

  it('refuses a missing CA, a bad node name, hosts with ports or schemes, and overlong validity', async () => {
    await expect(issueNode(dir, 'node1', ['10.0.0.5'])).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringContaining('mcp ca init'),
    });
    await initCa(dir);
    await expect(issueNode(dir, 'Node_1', ['10.0.0.5'])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(issueNode(dir, 'node1', [])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(issueNode(dir, 'node1', ['10.0.0.5'], 3650)).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    expect(() => parseAddresses(['10.0.0.5:7443'])).toThrow(/without port or scheme/);
    expect(() => parseAddresses(['https://node1.lan'])).toThrow(/without port or scheme/);
    expect(parseAddresses(['[::1]', 'Node1.LAN'])).toEqual({ ipAddresses: ['::1'], dnsNames: ['node1.lan'] });
  });
});
