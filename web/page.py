"""The status page at `/`: a server-rendered table of clients with counts.

The table shows at most `MAX_ROWS` clients (online first, then reconnecting, then offline, by
name): the page refreshes every few seconds, and rendering 20,000 rows each time would stall the
whole process. The counts always cover everyone; `/api/clients` lists everyone.
"""

from __future__ import annotations

import heapq

from flask import Blueprint, current_app, render_template
from presence_server.actors.stats import compute_stats

page = Blueprint("page", __name__, template_folder="templates")

REFRESH_SECONDS = 5
MAX_ROWS = 500
_STATUS_ORDER = {"online": 0, "reconnecting": 1}


@page.get("/")
def status_page():
    node = current_app.extensions["presence"]
    from .api import stats_window

    records = node.store.all()
    stats = compute_stats(records, node.clock.now(), stats_window())
    shown = heapq.nsmallest(MAX_ROWS, records,
                            key=lambda r: (_STATUS_ORDER.get(r.status, 2), r.name))
    return render_template("status.html", clients=[r.public() for r in shown], stats=stats,
                           hidden=len(records) - len(shown), node=node.node,
                           uptime=int(node.uptime()), refresh=REFRESH_SECONDS)
