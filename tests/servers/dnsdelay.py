#!/usr/bin/python3
"""A DNS forwarder that adds latency to UPDATE messages, for the benchmark.

    dnsdelay.py --listen ADDR:PORT --to ADDR:PORT --update-ms N --stats FILE
                [--pass-updates K] [--owner-pid PID]

Forwards UDP and TCP DNS messages to the real primary; an UPDATE (opcode 5)
is held N ms first, as a distant primary or a provider's API would.  The
first K UPDATEs pass at once (a preflight's probe, before the UPDATE a test
wants held).  Counts
messages by opcode and writes them to FILE (JSON) every second and at exit.
Loopback only; standard library only.
"""

import argparse
import asyncio
import json
import os
import signal
import struct

OPCODES = {0: "query", 4: "notify", 5: "update"}


class Forwarder:
    def __init__(self, target, update_ms, stats_path, pass_updates=0):
        self.target = target
        self.update_s = update_ms / 1000.0
        self.pass_updates = pass_updates
        self.stats_path = stats_path
        self.counts = {}

    def note(self, message):
        opcode = (message[2] >> 3) & 0xF if len(message) > 2 else -1
        name = OPCODES.get(opcode, "other")
        self.counts[name] = self.counts.get(name, 0) + 1
        return opcode

    async def hold(self, message):
        if self.note(message) == 5 and self.counts["update"] > self.pass_updates:
            await asyncio.sleep(self.update_s)

    async def tcp_client(self, reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        try:
            while True:
                head = await reader.readexactly(2)
                message = await reader.readexactly(struct.unpack("!H", head)[0])
                await self.hold(message)
                up_writer.write(head + message)
                await up_writer.drain()
                rhead = await up_reader.readexactly(2)
                reply = await up_reader.readexactly(struct.unpack("!H", rhead)[0])
                writer.write(rhead + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            up_writer.close()
            writer.close()

    def write_stats(self):
        tmp = self.stats_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.counts, f)
        os.replace(tmp, self.stats_path)


class UdpFront(asyncio.DatagramProtocol):
    def __init__(self, forwarder):
        self.forwarder = forwarder
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        asyncio.ensure_future(self.relay(data, addr))

    async def relay(self, data, addr):
        loop = asyncio.get_running_loop()
        await self.forwarder.hold(data)
        reply = loop.create_future()

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, answer, _addr):
                if not reply.done():
                    reply.set_result(answer)

        transport, _ = await loop.create_datagram_endpoint(Back, remote_addr=self.forwarder.target)
        try:
            transport.sendto(data)
            answer = await asyncio.wait_for(reply, 5)
            self.transport.sendto(answer, addr)
        except asyncio.TimeoutError:
            pass
        finally:
            transport.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--update-ms", type=int, default=100)
    parser.add_argument("--stats", required=True)
    parser.add_argument("--pass-updates", type=int, default=0)
    parser.add_argument("--owner-pid", type=int, default=0)
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    thost, tport = args.to.rsplit(":", 1)
    forwarder = Forwarder((thost, int(tport)), args.update_ms, args.stats, args.pass_updates)
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(forwarder.tcp_client, host, int(port))
    await loop.create_datagram_endpoint(lambda: UdpFront(forwarder), local_addr=(host, int(port)))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        forwarder.write_stats()
        if args.owner_pid:
            try:
                os.kill(args.owner_pid, 0)
            except ProcessLookupError:
                break
        try:
            await asyncio.wait_for(stop.wait(), 1)
        except asyncio.TimeoutError:
            pass
    server.close()
    forwarder.write_stats()


if __name__ == "__main__":
    asyncio.run(main())
