"""A backend that prices what it parsed, for t/220-backend-parity.t.

Werkzeug (Flask's request parser, Debian's python3-werkzeug) reads each
request as a Python backend would: query and form fields through its
MultiDict (decoded names, the first of two), multipart with its own
parser, JSON with Python's json (the last of two keys), headers as WSGI
environ variables, and a boolean by truthiness, as `if body.get("hd")`
does.  It answers X-Backend-Cost: the price of the work it would do, by
the same table as the matrix of t/220, or "refused" when it would refuse
the request itself (no work done).

    python3 parity_backend.py PORT [cgi]

With "cgi", form bodies are parsed by Python's own cgi.FieldStorage
instead (line-based multipart through the email package, as older
Python backends did): another parser to read requests apart.
"""

import re
import sys
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import cgi

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

SIZES = {"s": 1, "m": 2, "l": 4}
QUALITY = {"standard": 1, "hd": 5}


class Refused(Exception):
    pass


def integer(value, default):
    """Python's int(), as a backend calls it: " 4", "+4", "4_0" are 4,
    4, 40; a JSON number stays a number"""
    if value is None:
        return default
    if isinstance(value, bool):
        raise Refused("a boolean is no count")
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise Refused("no integer")
    if n < 0 or n > 50:
        raise Refused("out of range")
    return n


def size(value):
    value = "s" if value is None else value
    if value not in SIZES:
        raise Refused("unknown size")
    return SIZES[value]


def price(req):
    path = req.path

    if path == "/p/q":
        return size(req.args.get("size")) * integer(req.args.get("n"), 1)

    if path == "/p/h":
        q = req.headers.get("X-Quality", "standard")
        if q not in QUALITY:
            raise Refused("unknown quality")
        return QUALITY[q]

    if path == "/p/f":
        if PARSER == "cgi":
            env = dict(req.environ)
            env["QUERY_STRING"] = ""
            fs = cgi.FieldStorage(fp=req.stream, environ=env,
                                  keep_blank_values=True)
            fields = {}
            for item in (fs.list or []):
                if item.filename is None and item.name not in fields:
                    fields[item.name] = item.value
            return size(fields.get("size")) * integer(fields.get("n"), 1)
        form = req.form
        return size(form.get("size")) * integer(form.get("n"), 1)

    if path == "/p/j":
        body = req.get_json(silent=True)
        if not isinstance(body, dict):
            raise Refused("no JSON object")
        opts = body.get("options")
        if not isinstance(opts, dict):
            opts = {}
        cost = size(opts.get("size")) * integer(body.get("n"), 1)
        if opts.get("hd"):
            cost += 7
        return cost

    m = re.match(r"^/p/r/([0-9]+)s$", path)
    if m:
        return 10 * int(m.group(1))

    raise Refused("no such route")


@Request.application
def app(req):
    try:
        cost = str(price(req))
    except Refused as e:
        cost = "refused (%s)" % e
    return Response("ok\n", headers={"X-Backend-Cost": cost})


PARSER = sys.argv[2] if len(sys.argv) > 2 else "werkzeug"

if __name__ == "__main__":
    server = make_server("127.0.0.1", int(sys.argv[1]), app, threaded=True)
    print("ready", flush=True)
    server.serve_forever()
