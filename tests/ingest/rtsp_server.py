"""A real RTSP server for the ingest tests: GStreamer's gst-rtsp-server, run by /usr/bin/python3.

    /usr/bin/python3 tests/ingest/rtsp_server.py [--port 0] [--user U --password-file F]

Debian's python3-gi serves the system interpreter, not the venv: the tests start this script
as a subprocess (tests/ingest/servers.py) and read ``port=N`` from its first line of output.
Mounts (every one is live: audio made as it is sent, paced by the pipeline clock):

    /pcmu      8 kHz mono G.711 µ-law, 440 Hz tone            (a typical camera)
    /pcma      8 kHz mono G.711 A-law
    /aac       48 kHz stereo AAC (MPEG-4 generic, RFC 3640)
    /opus      48 kHz stereo Opus
    /camera    MJPEG video + 8 kHz G.711 µ-law                 (video must be ignored)
    /private/aac   as /aac, behind Basic authentication when --user is given

It runs until SIGTERM or SIGINT. Nothing here is earwitness code: it is the other end.
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

TONE = "audiotestsrc is-live=true wave=sine freq=440 volume=0.4"
AAC = (
    f"{TONE} ! audio/x-raw,rate=48000,channels=2 ! voaacenc bitrate=96000"
    " ! rtpmp4gpay name=pay0 pt=96"
)
MOUNTS = {
    "/pcmu": f"{TONE} ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay0 pt=0",
    "/pcma": f"{TONE} ! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay0 pt=8",
    "/aac": AAC,
    "/opus": f"{TONE} ! audio/x-raw,rate=48000,channels=2 ! opusenc ! rtpopuspay name=pay0 pt=97",
    "/camera": (
        "videotestsrc is-live=true ! video/x-raw,format=I420,width=320,height=240,framerate=10/1"
        " ! jpegenc"
        f" ! rtpjpegpay name=pay0 pt=26 {TONE} ! audio/x-raw,rate=8000,channels=1 ! mulawenc"
        " ! rtppcmupay name=pay1 pt=0"
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user")
    parser.add_argument("--password-file")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    factories = {path: _factory(launch) for path, launch in MOUNTS.items()}
    private = _factory(AAC)
    if args.user:
        with open(args.password_file) as secret:
            _protect(server, private, factories.values(), args.user, secret.read().strip())
    for path, factory in factories.items():
        mounts.add_factory(path, factory)
    mounts.add_factory("/private/aac", private)
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print("error=cannot bind", flush=True)
        return 1
    print(f"port={server.get_bound_port()}", flush=True)
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    loop.run()
    return 0


def _factory(launch: str) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( {launch} )")
    factory.set_shared(True)
    return factory


def _protect(server, private, public, user: str, password: str) -> None:
    """Basic auth: ``user`` may use every mount, anonymous clients all but ``private``."""
    auth = GstRtspServer.RTSPAuth()
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), _token("user"))
    auth.set_default_token(_token("anonymous"))
    server.set_auth(auth)
    private.set_permissions(_allow("user", see="anonymous"))  # anonymous: 401, not 404
    for factory in public:
        factory.set_permissions(_allow("user", "anonymous"))


def _token(role: str) -> GstRtspServer.RTSPToken:
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, role)
    return token


def _allow(*roles: str, see: str | None = None) -> GstRtspServer.RTSPPermissions:
    """``roles`` may use the mount; ``see`` may only find it (and is asked to authenticate)."""
    permissions = GstRtspServer.RTSPPermissions()
    if see is not None:
        permissions.add_permission_for_role(see, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
    for role in roles:
        for permission in (
            GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS,
            GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT,
        ):
            permissions.add_permission_for_role(role, permission, True)
    return permissions


if __name__ == "__main__":
    sys.exit(main())
