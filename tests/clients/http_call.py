"""One HTTPS request with Python's own client (urllib, ssl), as a script
or a browser would send it: prints the status, the WWW-Authenticate
header and the body as one JSON object.

    http_call.py METHOD URL CAFILE [USER PASSWORD] [< BODY]

The body, if any, is read from stdin and sent as JSON.
"""

import base64
import json
import ssl
import sys
import urllib.error
import urllib.request


def main():
    method, url, cafile = sys.argv[1:4]
    credentials = sys.argv[4:6]
    body = sys.stdin.read().encode() or None
    context = ssl.create_default_context(cafile=cafile)
    request = urllib.request.Request(url, method=method, data=body)
    if body:
        request.add_header("Content-Type", "application/json")
    if credentials:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        request.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            status, headers, text = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, text = error.code, error.headers, error.read()
    print(json.dumps({
        "status": status,
        "www_authenticate": headers.get("WWW-Authenticate"),
        "body": text.decode(),
    }))


if __name__ == "__main__":
    main()
