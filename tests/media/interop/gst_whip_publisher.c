/* A WHIP publisher built on GStreamer's own WebRTC stack (webrtcbin, libnice ICE,
 * DTLS with webrtcbin's RSA certificate), for tests/media/test_gstreamer_whip.py.
 *
 * It does no HTTP: the test does the WHIP requests. The exchange over pipes:
 *   argv[1]  a gst-launch description holding a "webrtcbin name=webrtc" whose sink
 *            pads are linked to encoded RTP (the test chooses sources and codecs)
 *   stdout   the complete offer SDP (all candidates in it), then a line "END"
 *   stdin    the answer SDP, ended by an empty line; then nothing until the test
 *            closes stdin, which stops the publisher (so it cannot outlive the test)
 *   stderr   diagnostics; exit status 1 on any pipeline or negotiation error
 *
 * Traffic stays on 127.0.0.1: libnice skips loopback when it enumerates interfaces,
 * so 127.0.0.1 is added as the only local address; no STUN/TURN server is set, and
 * UPnP (on by default in libnice, it multicasts on every interface) is turned off.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>

static GstElement *webrtc;
static GMainLoop *loop;

static void die(const char *what, const char *detail)
{
  g_printerr("gst_whip_publisher: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

/* The answer arrives on stdin after the offer is printed; reading it blocks, so it
 * runs on its own thread (webrtcbin's action signals are thread-safe). */
static gpointer answer_thread(gpointer unused)
{
  GString *text = g_string_new(NULL);
  char line[4096];
  (void) unused;

  while (fgets(line, sizeof line, stdin) && strcmp(line, "\n") != 0 && strcmp(line, "\r\n") != 0)
    g_string_append(text, line);
  if (text->len == 0)
    die("no answer on stdin", NULL);

  GstSDPMessage *sdp = NULL;
  if (gst_sdp_message_new_from_text(text->str, &sdp) != GST_SDP_OK)
    die("answer does not parse", NULL);
  g_string_free(text, TRUE);
  GstWebRTCSessionDescription *answer =
      gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_ANSWER, sdp);
  GstPromise *promise = gst_promise_new();
  g_signal_emit_by_name(webrtc, "set-remote-description", answer, promise);
  gst_promise_wait(promise);
  const GstStructure *reply = gst_promise_get_reply(promise);
  GError *error = NULL;
  if (reply && gst_structure_get(reply, "error", G_TYPE_ERROR, &error, NULL))
    die("answer refused", error->message);
  gst_promise_unref(promise);
  gst_webrtc_session_description_free(answer);

  /* Stream until the test closes stdin (or dies, which closes it too). */
  while (fgets(line, sizeof line, stdin))
    ;
  g_main_loop_quit(loop);
  return NULL;
}

static void on_gathering_state(GstElement *element, GParamSpec *pspec, gpointer unused)
{
  GstWebRTCICEGatheringState state;
  GstWebRTCSessionDescription *offer = NULL;
  (void) pspec;
  (void) unused;

  g_object_get(element, "ice-gathering-state", &state, NULL);
  if (state != GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE)
    return;
  /* webrtcbin adds every gathered candidate to its local description, so this is a
   * complete (non-trickle) offer, as `whip-client --no-trickle` would send. */
  g_object_get(element, "local-description", &offer, NULL);
  if (!offer)
    die("gathering completed without a local description", NULL);
  gchar *text = gst_sdp_message_as_text(offer->sdp);
  printf("%sEND\n", text);
  fflush(stdout);
  g_free(text);
  gst_webrtc_session_description_free(offer);
  g_thread_unref(g_thread_new("answer", answer_thread, NULL));
}

static void on_offer_created(GstPromise *promise, gpointer unused)
{
  GstWebRTCSessionDescription *offer = NULL;
  (void) unused;

  const GstStructure *reply = gst_promise_get_reply(promise);
  if (!reply || !gst_structure_get(reply, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &offer,
                                   NULL))
    die("create-offer failed", NULL);
  gst_promise_unref(promise);
  g_signal_emit_by_name(webrtc, "set-local-description", offer, NULL);
  gst_webrtc_session_description_free(offer);
}

static void on_negotiation_needed(GstElement *element, gpointer unused)
{
  (void) unused;
  GstPromise *promise = gst_promise_new_with_change_func(on_offer_created, NULL, NULL);
  g_signal_emit_by_name(element, "create-offer", NULL, promise);
}

static gboolean on_bus_message(GstBus *bus, GstMessage *message, gpointer unused)
{
  (void) bus;
  (void) unused;
  if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR) {
    GError *error = NULL;
    gst_message_parse_error(message, &error, NULL);
    die("pipeline error", error->message);
  }
  return TRUE;
}

/* Loopback only: see the header comment. */
static void restrict_ice_to_loopback(void)
{
  GObject *ice = NULL;
  GObject *agent = NULL;
  gboolean added = FALSE;

  g_object_get(webrtc, "ice-agent", &ice, NULL);
  if (!ice)
    die("webrtcbin has no ice-agent", NULL);
  g_signal_emit_by_name(ice, "add-local-ip-address", "127.0.0.1", &added);
  if (!added)
    die("add-local-ip-address 127.0.0.1 failed", NULL);
  /* "agent" is the NiceAgent inside GstWebRTCNice (webrtcbin's only ICE backend). */
  if (g_object_class_find_property(G_OBJECT_GET_CLASS(ice), "agent"))
    g_object_get(ice, "agent", &agent, NULL);
  if (!agent)
    die("cannot reach the NiceAgent to disable UPnP", NULL);
  g_object_set(agent, "upnp", FALSE, NULL);
  g_object_set(ice, "ice-tcp", FALSE, NULL); /* the server does UDP only */
  g_object_unref(agent);
  g_object_unref(ice);
}

/* webrtcbin makes a sendrecv transceiver for each linked sink pad; WHIP ingest sends. */
static void make_transceivers_sendonly(void)
{
  GArray *transceivers = NULL;
  g_signal_emit_by_name(webrtc, "get-transceivers", &transceivers);
  if (!transceivers || transceivers->len == 0)
    die("webrtcbin has no transceivers (are its sink pads linked?)", NULL);
  for (guint i = 0; i < transceivers->len; i++) {
    GstWebRTCRTPTransceiver *t = g_array_index(transceivers, GstWebRTCRTPTransceiver *, i);
    g_object_set(t, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY, NULL);
  }
  g_array_unref(transceivers);
}

int main(int argc, char **argv)
{
  GError *error = NULL;

  gst_init(&argc, &argv);
  if (argc != 2)
    die("usage: gst_whip_publisher 'PIPELINE with webrtcbin name=webrtc'", NULL);
  /* A missing element is a "recoverable" parse error: the pipeline comes back with
   * a gap in it, so fail on any error rather than on a NULL pipeline only. */
  GstElement *pipeline = gst_parse_launch(argv[1], &error);
  if (error)
    die("pipeline does not parse", error->message);
  webrtc = gst_bin_get_by_name(GST_BIN(pipeline), "webrtc");
  if (!webrtc)
    die("pipeline has no element named webrtc", NULL);

  restrict_ice_to_loopback();
  make_transceivers_sendonly();
  g_signal_connect(webrtc, "on-negotiation-needed", G_CALLBACK(on_negotiation_needed), NULL);
  g_signal_connect(webrtc, "notify::ice-gathering-state", G_CALLBACK(on_gathering_state), NULL);

  loop = g_main_loop_new(NULL, FALSE);
  GstBus *bus = gst_pipeline_get_bus(GST_PIPELINE(pipeline));
  gst_bus_add_watch(bus, on_bus_message, NULL);
  gst_object_unref(bus);
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    die("pipeline does not start", NULL);
  g_main_loop_run(loop);

  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(webrtc);
  gst_object_unref(pipeline);
  g_main_loop_unref(loop);
  return 0;
}
