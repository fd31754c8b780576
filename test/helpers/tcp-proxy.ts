import { createServer, connect, type Socket } from 'node:net'

/** A loopback TCP proxy that can cut (or silently stall) every connection through it: a network failure on demand. */
export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1') {
  const pairs = new Set<{ client: Socket; upstream: Socket }>()
  let connections = 0
  let blocked = false
  const server = createServer((client) => {
    connections++
    // A cut network: connections are reset as soon as they arrive.
    if (blocked) { client.on('error', () => {}); client.resetAndDestroy(); return }
    const upstream = connect(targetPort, targetHost)
    const pair = { client, upstream }
    pairs.add(pair)
    client.pipe(upstream)
    upstream.pipe(client)
    const drop = () => { client.destroy(); upstream.destroy(); pairs.delete(pair) }
    client.on('error', drop).on('close', drop)
    upstream.on('error', drop).on('close', drop)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    get connections() { return connections },
    get open() { return pairs.size },
    /** Reset every connection (RST, no close handshake). */
    killAll() { for (const p of [...pairs]) { p.client.resetAndDestroy(); p.upstream.destroy(); pairs.delete(p) } },
    /** Keep every current connection open but pass nothing more through it (a dead network path). */
    stallAll() { for (const p of pairs) { p.client.unpipe(p.upstream); p.upstream.unpipe(p.client); p.client.pause(); p.upstream.pause() } },
    /** Cut the path: reset every connection and every new one until `restore()`. */
    cut() { blocked = true; this.killAll() },
    /** Let connections through again after `cut()`. */
    restore() { blocked = false },
    async stop() { this.killAll(); await new Promise<void>((resolve) => server.close(() => resolve())) },
  }
}
