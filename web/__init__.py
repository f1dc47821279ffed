"""The web layer, on top of both sides: the operators' API and the pages behind subscribers' links, put
together in one app (`web.app`). It may import everything; nothing imports it (`herald web` starts it by its
import path, as any ASGI server does)."""
