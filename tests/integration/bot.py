"""The fake Telegram Bot API's side of a test: the [alerts] block pointed at it, what it got."""

from __future__ import annotations

from devtools.fakes.telegram_api import FakeBotApi

CHAT = 111
STRANGER = 999


def alerts_toml(fake: FakeBotApi, *, commands: bool = False, **alerts: object) -> str:
    """An [alerts] section sending to `CHAT` through `fake` (extra keys as given)."""
    extra = "".join(f"{k} = {v}\n" for k, v in alerts.items())
    return (
        f'[alerts]\n{extra}[alerts.telegram]\ntoken = "{fake.token}"\n'
        f'chat_ids = [{CHAT}]\napi_url = "{fake.url}"\n'
        f"commands = {'true' if commands else 'false'}\ntimeout_s = 3\n"
    )


def texts(fake: FakeBotApi, chat_id: int = CHAT) -> list[str]:
    """Every message text sent to `chat_id`, in order."""
    return [str(m["text"]) for m in fake.sent if m["chat_id"] == chat_id]
