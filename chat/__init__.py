"""Chat, likes and moderation of a live session's room (see ``chat/API.md``)."""
