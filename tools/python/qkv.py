"""qkv from Python: the engine's C API (qkv.h) through ctypes, standard library only.

    import qkv
    model = qkv.Model("stories260K.gguf")
    session = qkv.Session(model)
    sampler = qkv.Sampler(model, temperature=0.8, seed=42)
    for text in qkv.generate(session, sampler, model.tokenize("Once upon a time"), n_predict=50):
        print(text, end="", flush=True)

    chat = qkv.Chat(qkv.Session(chat_model), system="You are terse.")
    print(chat.say("Hello!", qkv.Sampler(chat_model, temperature=0)))

The library is found at $QKV_LIBRARY, else build/engine/libqkv.so beside this checkout, else by the
system's search (libqkv.so.0). Every failure raises QkvError with the engine's message.
"""

import codecs
import ctypes
import ctypes.util
import os

__all__ = ["QkvError", "Model", "Session", "Sampler", "Chat", "generate", "apply_chat_template"]

OK, BUFFER_TOO_SMALL = 0, 5


class QkvError(RuntimeError):
    """A qkv call failed: .status is the C API's qkv_status, the message the engine's."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class _ModelParams(ctypes.Structure):
    _fields_ = [("tokenizer_path", ctypes.c_char_p), ("use_mmap", ctypes.c_int)]


class _SessionParams(ctypes.Structure):
    _fields_ = [("n_ctx", ctypes.c_int32), ("n_threads", ctypes.c_int32), ("n_threads_batch", ctypes.c_int32),
                ("n_batch", ctypes.c_int32), ("kv_f16", ctypes.c_int32)]


class _SamplerParams(ctypes.Structure):
    _fields_ = [("temperature", ctypes.c_float), ("top_k", ctypes.c_int32), ("top_p", ctypes.c_float),
                ("min_p", ctypes.c_float), ("repeat_penalty", ctypes.c_float), ("repeat_last_n", ctypes.c_int32),
                ("seed", ctypes.c_uint64)]


_TOKEN_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_char),
                                   ctypes.c_size_t)


def _find_library():
    env = os.environ.get("QKV_LIBRARY")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    built = os.path.join(here, "..", "..", "build", "engine", "libqkv.so")
    if os.path.exists(built):
        return built
    return ctypes.util.find_library("qkv") or "libqkv.so.0"


def _load():
    lib = ctypes.CDLL(_find_library())
    P, c = ctypes.POINTER, ctypes
    sig = {
        "qkv_status_string": (c.c_char_p, [c.c_int]),
        "qkv_model_default_params": (_ModelParams, []),
        "qkv_model_load": (c.c_int, [c.c_char_p, P(_ModelParams), P(c.c_void_p)]),
        "qkv_model_free": (None, [c.c_void_p]),
        "qkv_model_last_error": (c.c_char_p, [c.c_void_p]),
        "qkv_model_n_vocab": (c.c_int32, [c.c_void_p]),
        "qkv_model_is_end_of_text": (c.c_int, [c.c_void_p, c.c_int32]),
        "qkv_tokenize_special": (c.c_int, [c.c_void_p, c.c_char_p, c.c_size_t, c.c_int, c.c_int, P(c.c_int32),
                                           c.c_size_t, P(c.c_size_t)]),
        "qkv_token_to_piece": (c.c_int, [c.c_void_p, c.c_int32, c.c_int32, c.c_char_p, c.c_size_t, P(c.c_size_t)]),
        "qkv_session_default_params": (_SessionParams, []),
        "qkv_session_new": (c.c_int, [c.c_void_p, P(_SessionParams), P(c.c_void_p)]),
        "qkv_session_free": (None, [c.c_void_p]),
        "qkv_session_last_error": (c.c_char_p, [c.c_void_p]),
        "qkv_eval": (c.c_int, [c.c_void_p, P(c.c_int32), c.c_size_t]),
        "qkv_logits": (P(c.c_float), [c.c_void_p]),
        "qkv_session_n_past": (c.c_int32, [c.c_void_p]),
        "qkv_session_n_ctx": (c.c_int32, [c.c_void_p]),
        "qkv_session_reset": (None, [c.c_void_p]),
        "qkv_session_truncate": (c.c_int, [c.c_void_p, c.c_int32]),
        "qkv_session_cancel": (None, [c.c_void_p, c.c_int]),
        "qkv_session_save_file": (c.c_int, [c.c_void_p, c.c_char_p]),
        "qkv_session_load_file": (c.c_int, [c.c_void_p, c.c_char_p]),
        "qkv_sampler_default_params": (_SamplerParams, []),
        "qkv_sampler_new": (c.c_int, [c.c_void_p, P(_SamplerParams), P(c.c_void_p)]),
        "qkv_sampler_free": (None, [c.c_void_p]),
        "qkv_sampler_last_error": (c.c_char_p, [c.c_void_p]),
        "qkv_sampler_sample": (c.c_int, [c.c_void_p, P(c.c_float), P(c.c_int32)]),
        "qkv_sampler_accept": (None, [c.c_void_p, c.c_int32]),
        "qkv_chat_new": (c.c_int, [c.c_void_p, c.c_char_p, c.c_char_p, c.c_int32, P(c.c_void_p)]),
        "qkv_chat_free": (None, [c.c_void_p]),
        "qkv_chat_last_error": (c.c_char_p, [c.c_void_p]),
        "qkv_chat_say": (c.c_int, [c.c_void_p, c.c_void_p, c.c_char_p, c.c_size_t, _TOKEN_CALLBACK, c.c_void_p]),
        "qkv_chat_reply": (P(c.c_char), [c.c_void_p, P(c.c_size_t)]),
        "qkv_chat_reset": (None, [c.c_void_p]),
        "qkv_chat_apply_template": (c.c_int, [c.c_void_p, c.c_char_p, c.c_char_p, c.c_int, c.c_char_p, c.c_size_t,
                                              P(c.c_size_t)]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


_lib = _load()


def _check(status, error_fn=None, handle=None):
    if status != OK:
        message = error_fn(handle).decode("utf-8", "replace") if error_fn and handle else ""
        raise QkvError(status, message or _lib.qkv_status_string(status).decode())


def _text(s):
    return s.encode("utf-8") if isinstance(s, str) else bytes(s)


class Model:
    """Weights and tokenizer (a GGUF, or a llama2.c .bin with tokenizer=...), shared by sessions."""

    def __init__(self, path, tokenizer=None, mmap=True):
        params = _lib.qkv_model_default_params()
        params.tokenizer_path = _text(tokenizer) if tokenizer else None
        params.use_mmap = 1 if mmap else 0
        handle = ctypes.c_void_p()
        status = _lib.qkv_model_load(_text(path), ctypes.byref(params), ctypes.byref(handle))
        if status != OK:
            message = _lib.qkv_model_last_error(handle).decode("utf-8", "replace")
            _lib.qkv_model_free(handle)
            raise QkvError(status, message)
        self._h = handle

    def close(self):
        if getattr(self, "_h", None):
            _lib.qkv_model_free(self._h)
            self._h = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def n_vocab(self):
        return _lib.qkv_model_n_vocab(self._h)

    def is_end_of_text(self, token):
        return bool(_lib.qkv_model_is_end_of_text(self._h, token))

    def tokenize(self, text, add_special=True, parse_special=False):
        data = _text(text)
        n = ctypes.c_size_t()
        cap = len(data) + 8
        while True:
            ids = (ctypes.c_int32 * cap)()
            status = _lib.qkv_tokenize_special(self._h, data, len(data), int(add_special), int(parse_special), ids, cap,
                                               ctypes.byref(n))
            if status == BUFFER_TOO_SMALL:
                cap = n.value
                continue
            _check(status, _lib.qkv_model_last_error, self._h)
            return list(ids[:n.value])

    def token_to_piece(self, token, prev=-1):
        """The bytes of `token` after `prev` (a piece may be part of a UTF-8 character)."""
        buf = ctypes.create_string_buffer(64)
        n = ctypes.c_size_t()
        status = _lib.qkv_token_to_piece(self._h, token, prev, buf, len(buf), ctypes.byref(n))
        if status == BUFFER_TOO_SMALL:
            buf = ctypes.create_string_buffer(n.value)
            status = _lib.qkv_token_to_piece(self._h, token, prev, buf, len(buf), ctypes.byref(n))
        _check(status, _lib.qkv_model_last_error, self._h)
        return buf.raw[:n.value]

    def detokenize(self, tokens):
        out, prev = b"", -1
        for t in tokens:
            out += self.token_to_piece(t, prev)
            prev = t
        return out.decode("utf-8", "replace")


class Session:
    """One conversation's KV cache and run state (use from one thread at a time)."""

    def __init__(self, model, n_ctx=0, n_threads=0, n_batch=512, kv_f16=True):
        params = _lib.qkv_session_default_params()
        params.n_ctx, params.n_threads, params.n_batch, params.kv_f16 = n_ctx, n_threads, n_batch, int(kv_f16)
        handle = ctypes.c_void_p()
        status = _lib.qkv_session_new(model._h, ctypes.byref(params), ctypes.byref(handle))
        if status != OK:
            message = _lib.qkv_session_last_error(handle).decode("utf-8", "replace")
            _lib.qkv_session_free(handle)
            raise QkvError(status, message)
        self._h, self.model = handle, model
        self._pending = -1  # the last token generate() sampled, evaluated when the history goes on

    def close(self):
        if getattr(self, "_h", None):
            _lib.qkv_session_free(self._h)
            self._h = None

    __del__ = close

    def _call(self, status):
        _check(status, _lib.qkv_session_last_error, self._h)

    def eval(self, tokens):
        if self._pending >= 0:
            tokens, self._pending = [self._pending] + list(tokens), -1
        arr = (ctypes.c_int32 * len(tokens))(*tokens)
        self._call(_lib.qkv_eval(self._h, arr, len(tokens)))

    def logits(self):
        """The last evaluated token's logits, a list of n_vocab floats."""
        p = _lib.qkv_logits(self._h)
        if not p:
            raise QkvError(1, "no logits: evaluate a token first")
        return p[:self.model.n_vocab]

    @property
    def n_past(self):
        return _lib.qkv_session_n_past(self._h)

    @property
    def n_ctx(self):
        return _lib.qkv_session_n_ctx(self._h)

    def reset(self):
        self._pending = -1
        _lib.qkv_session_reset(self._h)

    def truncate(self, n_past):
        self._pending = -1
        self._call(_lib.qkv_session_truncate(self._h, n_past))

    def cancel(self, request=True):
        """Stops an eval running on another thread (it raises QkvError with status 8)."""
        _lib.qkv_session_cancel(self._h, int(request))

    def save(self, path):
        if self._pending >= 0:
            self.eval([])
        self._call(_lib.qkv_session_save_file(self._h, _text(path)))

    def load(self, path):
        self._pending = -1
        self._call(_lib.qkv_session_load_file(self._h, _text(path)))


class Sampler:
    """Token choice: temperature 0 is greedy; the same seed gives the same text as `qkv generate -s`."""

    def __init__(self, model, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0,
                 repeat_last_n=64, seed=0):
        params = _lib.qkv_sampler_default_params()
        params.temperature, params.top_k, params.top_p, params.min_p = temperature, top_k, top_p, min_p
        params.repeat_penalty, params.repeat_last_n, params.seed = repeat_penalty, repeat_last_n, seed
        handle = ctypes.c_void_p()
        status = _lib.qkv_sampler_new(model._h, ctypes.byref(params), ctypes.byref(handle))
        if status != OK:
            message = _lib.qkv_sampler_last_error(handle).decode("utf-8", "replace")
            _lib.qkv_sampler_free(handle)
            raise QkvError(status, message)
        self._h = handle

    def close(self):
        if getattr(self, "_h", None):
            _lib.qkv_sampler_free(self._h)
            self._h = None

    __del__ = close

    def sample(self, logits_ptr):
        token = ctypes.c_int32()
        _check(_lib.qkv_sampler_sample(self._h, logits_ptr, ctypes.byref(token)), _lib.qkv_sampler_last_error, self._h)
        return token.value

    def accept(self, token):
        _lib.qkv_sampler_accept(self._h, token)


def generate(session, sampler, prompt, n_predict=-1, stop=()):
    """Yields the generated text as it comes (str; a character split across tokens comes whole).

    Evaluates `prompt` (token ids), then samples up to n_predict tokens (< 0: until end of text or a
    full context), as the engine's generate() does: the same seed gives the same text as
    `qkv generate`. Stops before any of the `stop` strings (which are not yielded). The last token
    stays pending, so a later call continues the same history.
    """
    model = session.model
    prompt = list(prompt)
    if not prompt and session._pending < 0:
        raise QkvError(1, "generate: the prompt has no tokens")
    for t in prompt:
        sampler.accept(t)
    session.eval(prompt)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    held = ""
    prev = prompt[-1] if prompt else -1
    produced = 0
    while n_predict < 0 or produced < n_predict:
        token = sampler.sample(_lib.qkv_logits(session._h))
        sampler.accept(token)
        produced += 1
        if model.is_end_of_text(token):
            break
        held += decoder.decode(model.token_to_piece(token, prev))
        prev = token
        hits = [held.find(s) for s in stop if s in held]
        if hits:
            yield held[:min(hits)]
            session._pending = token
            return
        keep = max([n for s in stop for n in range(1, len(s)) if held.endswith(s[:n])] or [0])
        if len(held) > keep:
            yield held[:len(held) - keep]
            held = held[len(held) - keep:]
        if (n_predict >= 0 and produced >= n_predict) or session.n_past >= session.n_ctx:
            session._pending = token if session.n_past < session.n_ctx else -1
            break
        session.eval([token])
    if held:
        yield held


class Chat:
    """A conversation with a chat model (the engine's qkv::Chat): say() returns each reply."""

    def __init__(self, session, template=None, system=None, n_predict=-1):
        handle = ctypes.c_void_p()
        status = _lib.qkv_chat_new(session._h, _text(template) if template else None,
                                   _text(system) if system else None, n_predict, ctypes.byref(handle))
        if status != OK:
            message = _lib.qkv_chat_last_error(handle).decode("utf-8", "replace")
            _lib.qkv_chat_free(handle)
            raise QkvError(status, message)
        self._h, self.session = handle, session

    def close(self):
        if getattr(self, "_h", None):
            _lib.qkv_chat_free(self._h)
            self._h = None

    __del__ = close

    def say(self, message, sampler, on_text=None):
        """Sends the user's message; returns the reply (on_text(str) sees it as it streams)."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")

        def stream(user, token, data, length):
            if on_text:
                on_text(decoder.decode(ctypes.string_at(data, length)))
            return 1

        callback = _TOKEN_CALLBACK(stream)
        data = _text(message)
        _check(_lib.qkv_chat_say(self._h, sampler._h, data, len(data), callback, None), _lib.qkv_chat_last_error,
               self._h)
        n = ctypes.c_size_t()
        p = _lib.qkv_chat_reply(self._h, ctypes.byref(n))
        return ctypes.string_at(p, n.value).decode("utf-8", "replace")

    def reset(self):
        _lib.qkv_chat_reset(self._h)


def apply_chat_template(model, messages, add_generation_prompt=True, template=None):
    """The prompt text a conversation makes (messages: a list of {"role", "content"} dicts)."""
    import json
    data = _text(json.dumps(messages, ensure_ascii=False))
    n = ctypes.c_size_t()
    cap = 4096
    while True:
        buf = ctypes.create_string_buffer(cap)
        status = _lib.qkv_chat_apply_template(model._h, _text(template) if template else None, data,
                                              int(add_generation_prompt), buf, cap, ctypes.byref(n))
        if status == BUFFER_TOO_SMALL:
            cap = n.value + 1
            continue
        _check(status, _lib.qkv_model_last_error, model._h)
        return buf.raw[:n.value].decode("utf-8", "replace")
