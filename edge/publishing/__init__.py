"""Publishing: Results, status and health in, MQTT messages out (and the session topic back).

`publisher` owns the paho client and the topics it publishes; `delivery` moves outbox rows to
the broker in order; `client` builds the one paho client; `broker_url` parses mqtt.url;
`topics`, `topic_guard` and `session_tokens` are the topic layout, the test-topic rule and the
dashboard's subject tokens; `subscriber` is the reference dashboard client; `broker` the
embedded broker of `python -m edge demo`.
"""
