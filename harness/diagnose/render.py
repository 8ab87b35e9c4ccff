"""A diagnosis as a readable table (host, verdict, failing layer, evidence, next step)."""

from __future__ import annotations

import textwrap

from harness.catalogue import CAUSES
from harness.diagnose.walk import Diagnosis

WIDTH = 110
SHORT_FLAGS = {"failed_active_health_check": "failed_active_hc", "failed_outlier_check": "outlier_ejected",
               "pending_dynamic_removal": "pending_removal", "failed_active_degraded_check": "degraded_hc",
               "excluded_via_immediate_hc_fail": "immediate_hc_fail"}


def render_table(diagnosis: Diagnosis, verbose: bool = False) -> str:
    lines = [f"gateway: {diagnosis.source} ({'live health flags' if diagnosis.live else 'config file: health unknown'})"]
    header = f"{'HOST':<34} {'GATEWAY':<24} {'VERDICT':<10} {'LAYER':<11} CAUSE"
    lines += ["", header, "-" * len(header)]
    for host in diagnosis.hosts:
        gateway = ("healthy" if host.gateway_healthy else "/".join(SHORT_FLAGS.get(f, f) for f in host.flags)
                   or "unhealthy") if host.gateway_healthy is not None else "unknown"
        failure = host.failure
        lines.append(f"{host.host:<34} {gateway:<24} {host.verdict:<10} "
                     f"{(failure.layer if failure else '-'):<11} {host.cause or '-'}")
        if host.walked or host.unhealthy:
            lines += textwrap.wrap(host.evidence, WIDTH, initial_indent="    evidence: ", subsequent_indent="      ")
            if host.cause in CAUSES:
                lines += textwrap.wrap(CAUSES[host.cause].row, WIDTH, initial_indent="    table 1:  ",
                                       subsequent_indent="      ")
            if host.next_step:
                lines += textwrap.wrap(host.next_step, WIDTH, initial_indent="    next:     ", subsequent_indent="      ")
            if verbose:
                for result in host.layers:
                    mark = "ok  " if result.ok else "FAIL"
                    lines += textwrap.wrap(f"{mark} {result.layer}: {result.evidence}", WIDTH,
                                           initial_indent="      ", subsequent_indent="          ")
    bad = sum(1 for h in diagnosis.hosts if h.unhealthy)
    lines += ["", f"{len(diagnosis.hosts)} hosts, {bad} unhealthy"]
    return "\n".join(lines)
