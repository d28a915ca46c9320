"""The spine of liveshelf: accounts, live sessions, the room log and its WebSocket channel."""
