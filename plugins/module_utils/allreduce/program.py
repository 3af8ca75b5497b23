# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The MPI all-reduce program (mpi4py) that checks CPU nodes, and the argv that runs it.

The program is passed to the interpreter with ``-c``, so nothing has to be copied to the nodes:
``mpirun`` hands the arguments to every rank. It needs only mpi4py (Debian/Ubuntu ``python3-mpi4py``)
and the standard library, and prints what nccl-tests' ``all_reduce_perf`` prints (same header, rank
lines, columns and footer), so ``allreduce.output.parse_allreduce`` reads both.

Per message size it checks the sum of a known pattern out of place and in place (#wrong counts the
elements that differ, over all ranks), then times ``iters`` all-reduces after ``warmup`` untimed ones.
Times are the slowest rank's; algbw = size / time, busbw = algbw * 2 (n - 1) / n, as nccl-tests
computes them for all-reduce.
"""

from __future__ import annotations

PROGRAM = r'''
import os
import socket
import sys
import time
from array import array

import mpi4py
from mpi4py import MPI

BLOCK = 64


def pattern(first, step, count):
    """count floats: first + step * (i mod BLOCK); exact in float32 for the sizes used here."""
    block = array("f", [first + step * j for j in range(BLOCK)])
    values = block * (count // BLOCK + 1)
    del values[count:]
    return values


def wrong(got, want):
    if got == want:
        return 0
    return sum(1 for a, b in zip(got, want) if a != b)


def timed(comm, call, warmup, iters):
    for _ in range(warmup):
        call()
    comm.Barrier()
    start = time.perf_counter()
    for _ in range(iters):
        call()
    return comm.allreduce((time.perf_counter() - start) / iters, op=MPI.MAX)


def fmt(value):
    return "%7.1f" % value if value < 1e6 else "%7.0f" % value


def main(argv):
    min_bytes, max_bytes, factor, iters, warmup = [int(a) for a in argv[1:6]]
    comm = MPI.COMM_WORLD
    rank, nranks = comm.Get_rank(), comm.Get_size()
    hosts = comm.gather((rank, os.getpid(), socket.gethostname()), root=0)
    out = sys.stdout.write
    if rank == 0:
        out("# hpc.pcluster MPI all-reduce (mpi4py %s, Python %s)\n" % (mpi4py.__version__, sys.version.split()[0]))
        out("# nranks %d minBytes %d maxBytes %d step: %d(factor) warmup iters: %d iters: %d validation: 1\n"
            % (nranks, min_bytes, max_bytes, factor, warmup, iters))
        out("# MPI library: %s\n#\n# Using devices\n" % MPI.Get_library_version().splitlines()[0].strip(" \x00"))
        for r, pid, host in hosts:
            out("#  Rank %2d Group  0 Pid %6d on %10s device  0 [cpu] %s\n" % (r, pid, host, "MPI rank on CPU"))
        out("#\n#%59s out-of-place                       in-place\n" % "")
        out("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s\n" % (
            "size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw",
            "#wrong"))
        out("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s\n" % (
            "(B)", "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", ""))
        sys.stdout.flush()
    expect = pattern(nranks * (nranks + 1) / 2.0, float(nranks), max_bytes // 4)
    total_wrong, busbws, size = 0, [], max(min_bytes, 4)
    while size <= max_bytes:
        count = size // 4
        send, recv = pattern(rank + 1.0, 1.0, count), array("f", bytes(4 * count))
        want = expect[:count]
        comm.Allreduce([send, MPI.FLOAT], [recv, MPI.FLOAT], op=MPI.SUM)
        oop_wrong = comm.allreduce(wrong(recv, want), op=MPI.SUM)
        oop_time = timed(comm, lambda: comm.Allreduce([send, MPI.FLOAT], [recv, MPI.FLOAT], op=MPI.SUM), warmup, iters)
        inplace = pattern(rank + 1.0, 1.0, count)
        comm.Allreduce(MPI.IN_PLACE, [inplace, MPI.FLOAT], op=MPI.SUM)
        ip_wrong = comm.allreduce(wrong(inplace, want), op=MPI.SUM)
        ip_time = timed(comm, lambda: comm.Allreduce(MPI.IN_PLACE, [inplace, MPI.FLOAT], op=MPI.SUM), warmup, iters)
        total_wrong += oop_wrong + ip_wrong
        if rank == 0:
            cells = []
            for seconds, errors in ((oop_time, oop_wrong), (ip_time, ip_wrong)):
                algbw = size / seconds / 1e9
                busbw = algbw * 2.0 * (nranks - 1) / nranks
                busbws.append(busbw)
                cells.append("%s  %6.3f  %6.3f  %6d" % (fmt(seconds * 1e6), algbw, busbw, errors))
            out("%12d  %12d  %8s  %6s  %6d  %s  %s\n" % (size, count, "float", "sum", -1, cells[0], cells[1]))
            sys.stdout.flush()
        size *= factor
    if rank == 0:
        out("# Out of bounds values : %d %s\n" % (total_wrong, "FAILED" if total_wrong else "OK"))
        out("# Avg bus bandwidth    : %g \n#\n" % (sum(busbws) / len(busbws) if busbws else 0.0))
        out("# Collective test concluded: mpi_allreduce\n")
        sys.stdout.flush()
    return 1 if total_wrong else 0


sys.exit(main(sys.argv))
'''


def program_argv(python, min_bytes, max_bytes, factor, iters, warmup):
    """argv that runs the program with the interpreter ``python`` (mpirun appends nothing)."""
    return [python, "-c", PROGRAM, str(int(min_bytes)), str(int(max_bytes)), str(int(factor)), str(int(iters)),
            str(int(warmup))]
