"""The status page at `/`: a server-rendered table of clients with counts."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from actors.stats import compute_stats

page = Blueprint("page", __name__, template_folder="templates")

REFRESH_SECONDS = 5


@page.get("/")
def status_page():
    node = current_app.extensions["presence"]
    from .api import stats_window

    records = sorted(node.store.all(), key=lambda r: ({"online": 0, "reconnecting": 1}
                                                      .get(r.status, 2), r.name))
    stats = compute_stats(records, node.clock.now(), stats_window())
    return render_template("status.html", clients=[r.public() for r in records], stats=stats,
                           node=node.node, uptime=int(node.uptime()), refresh=REFRESH_SECONDS)
