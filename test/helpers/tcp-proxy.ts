import net from 'node:net'

/**
 * A TCP proxy in front of a shared server (Postgres, Redis) that a test can
 * cut and restore: an outage as goalpost sees it (connections reset, new ones
 * refused) without stopping the server other tests use.
 */
export interface TcpProxy {
  port: number
  /** Resets every open connection and refuses new ones until restore(). */
  cut(): Promise<void>
  /** Listens again on the same port. */
  restore(): Promise<void>
  close(): Promise<void>
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>()
  const serve = () =>
    net.createServer((client) => {
      const upstream = net.connect(target)
      for (const s of [client, upstream]) {
        sockets.add(s)
        s.once('close', () => sockets.delete(s))
        s.on('error', () => {
          client.destroy()
          upstream.destroy()
        })
      }
      client.pipe(upstream)
      upstream.pipe(client)
    })
  const listen = (server: net.Server, port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port))
    })
  let server: net.Server | null = serve()
  const port = await listen(server, 0)
  const shut = async () => {
    const s = server
    server = null
    for (const socket of sockets) socket.resetAndDestroy()
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()))
  }
  return {
    port,
    cut: shut,
    async restore() {
      if (server) return
      server = serve()
      await listen(server, port)
    },
    close: shut,
  }
}

/** The URL with its host and port replaced by the proxy's. */
export function throughProxy(url: string, proxy: TcpProxy): string {
  const u = new URL(url)
  u.hostname = '127.0.0.1'
  u.port = String(proxy.port)
  return u.toString()
}
