"""Reading input files under the input policy, one reading layer for every loader: plain and gzip
files (gzip is detected by its magic bytes, not the name; bzip2/xz/zip/zstd are refused by name),
strict UTF-8 with or without a byte-order mark, LF or CRLF, long lines in pieces so memory does
not grow with a line. Every decoding, parsing and field-count problem and a truncated gzip raise
``ValueError`` naming the file and the physical line (blank lines and multi-line quoted cells
counted). FASTA records stream in chunks (:func:`stream_fasta`); tables row by row (:func:`read_table`);
YAML files (:func:`read_yaml`) refuse a key written twice.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path

import yaml

from vqdna.core.contracts import ContractError
from vqdna.core.sequence import WHITESPACE, normalize

_GZIP_MAGIC = b"\x1f\x8b"

# ---------------------------------------------------------------- reading files

#: magic bytes of compressed formats that are not read (only plain text and gzip are)
_OTHER_COMPRESSION = {
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"PK\x03\x04": "zip",
    b"\x28\xb5\x2f\xfd": "zstd",
}
_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)
#: longest piece of one physical line read at a time (bytes): memory does not grow with the line
CHUNK_BYTES = 1 << 20


def is_gzip(path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def open_binary(path):
    """A plain or gzip file as a binary stream (gzip is detected by its magic bytes, not the
    name); another compression format is refused by name."""
    with open(path, "rb") as handle:
        head = handle.read(6)
    for magic, kind in _OTHER_COMPRESSION.items():
        if head.startswith(magic):
            raise ValueError(f"{path} line 1: {kind}-compressed file; only plain text and gzip are read")
    return gzip.open(path, "rb") if head[:2] == _GZIP_MAGIC else open(path, "rb")


def open_text(path) -> io.TextIOBase:
    """Open a plain or gzip text file (universal newlines, so ``\\r\\n`` is fine)."""
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="ascii", errors="replace")
    return open(path, encoding="ascii", errors="replace")


def read_lines(path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, int, str, bool]]:
    """Yield ``(line, column, text, line_ends)`` pieces of a plain or gzip UTF-8 file.

    ``line`` is the 1-based physical line, ``column`` the number of characters of that line before
    the piece; a line longer than ``chunk_bytes`` comes in several pieces (``line_ends`` marks
    the last), so memory does not grow with the line. The line ending (LF or CRLF) is removed and
    a UTF-8 byte-order mark at the start of the file is dropped. Text that is not UTF-8 and a
    corrupt or truncated gzip raise ``ValueError`` naming the file and the line.
    """
    line_no, column, line_bytes, at_start = 1, 0, 0, True
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open_binary(path) as handle:
            while True:
                raw = handle.readline(chunk_bytes)
                if not raw:
                    break
                ends = raw.endswith(b"\n")
                raw = raw[:-1] if ends else raw
                try:
                    text = decoder.decode(raw, final=ends)
                except UnicodeDecodeError as error:  # error.object = bytes held back + raw
                    where = line_bytes - (len(error.object) - len(raw)) + error.start + 1
                    byte = error.object[error.start]
                    raise ValueError(
                        f"{path} line {line_no}: not UTF-8 text (byte 0x{byte:02x} at "
                        f"byte {where} of the line)"
                    ) from None
                if at_start:
                    text, at_start = text.removeprefix("\ufeff"), False
                if ends and text.endswith("\r"):
                    text = text[:-1]
                yield line_no, column, text, ends
                if ends:
                    line_no, column, line_bytes = line_no + 1, 0, 0
                    decoder.reset()
                else:
                    column, line_bytes = column + len(text), line_bytes + len(raw)
            if column or decoder.getstate()[0]:
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    raise ValueError(
                        f"{path} line {line_no}: not UTF-8 text (cut multi-byte character at the end)"
                    ) from None
    except _GZIP_ERRORS as error:
        raise ValueError(f"{path}: corrupt or truncated gzip after line {line_no - 1} ({error})") from error


def whole_lines(path) -> Iterator[tuple[int, str]]:
    """``(line, text)`` of every physical line (pieces joined): for tables, whose rows are short."""
    parts: list[str] = []
    for line_no, _, text, ends in read_lines(path):
        parts.append(text)
        if ends:
            yield line_no, "".join(parts)
            parts = []
    if parts:
        yield line_no, "".join(parts)


def stream_fasta(
    path,
    chunk_lines: int = 1000,
    unique_ids: bool = True,
    allow_empty: bool = True,
    chunk_chars: int = CHUNK_BYTES,
) -> Iterator[tuple[str, str]]:
    """Yield ``(record_id, chunk)`` pieces of a FASTA(.gz) file, each chunk the normalised
    concatenation of up to ``chunk_lines`` sequence lines and about ``chunk_chars`` bases (a
    long line is read in pieces); memory does not grow with the file or the line.

    ``record_id`` is the header up to the first whitespace; a record without sequence yields
    one empty chunk, or raises when ``allow_empty`` is False. With ``unique_ids=False`` (files
    whose headers are descriptions, not ids) a repeated id gets a ``#2``, ``#3``... suffix instead
    of raising. Errors (``ValueError`` naming file and line): sequence before the first header,
    empty or duplicate ids, invalid characters (with their position in the line), text that is
    not UTF-8, a truncated gzip, a file without records.
    """
    seen: set[str] = set()
    name, header_line, parts, size, has_sequence = None, 0, [], 0, True
    in_header = False

    def finish_record():
        if not has_sequence and not allow_empty:
            raise ValueError(f"{path} line {header_line}: record {name!r} has no sequence (a header alone)")

    for line_no, column, text, ends in read_lines(path, chunk_chars):
        if in_header:  # the rest of a very long header line
            in_header = not ends
            continue
        if column == 0 and text.startswith(">"):
            if name is not None:
                finish_record()
            if parts or not has_sequence:
                yield name, "".join(parts)
                parts, size = [], 0
            in_header, header_line, has_sequence = not ends, line_no, False
            name = text[1:].split(maxsplit=1)[0] if text[1:].strip() else ""
            if not name:
                raise ValueError(f"{path} line {line_no}: empty FASTA header")
            if name in seen and unique_ids:
                raise ValueError(f"{path} line {line_no}: duplicate FASTA header {name!r}")
            base, copy = name, 1
            while name in seen:
                copy += 1
                name = f"{base}#{copy}"
            seen.add(name)
            continue
        if not text.strip(WHITESPACE):  # blank (ASCII whitespace only)
            continue
        if name is None:
            raise ValueError(f"{path} line {line_no}: sequence before the first '>' header")
        piece = normalize(text, where=f"{path} line {line_no}", offset=column)
        parts.append(piece)
        size += len(piece)
        has_sequence = True
        if len(parts) >= chunk_lines or size >= chunk_chars:
            yield name, "".join(parts)
            parts, size = [], 0
    if name is not None:
        finish_record()
    if parts or not has_sequence:
        yield name, "".join(parts)
    if not seen:
        raise ValueError(f"{path}: no FASTA records")


def read_fasta(path, unique_ids: bool = True) -> dict[str, str]:
    """All records of a FASTA(.gz) file as ``{id: normalised sequence}`` (file order).
    A record without sequence is an error naming its header line; ``unique_ids`` as in
    :func:`stream_fasta`."""
    records: dict[str, list[str]] = {}
    for name, chunk in stream_fasta(path, unique_ids=unique_ids, allow_empty=False):
        records.setdefault(name, []).append(chunk)
    return {name: "".join(chunks) for name, chunks in records.items()}


def read_table(path, columns: list[str], sep: str = ",") -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV/TSV(.gz) with a header as ``(physical line of the row's start, {column: cell})``
    for the wanted ``columns``; blank lines are skipped and quoted cells may span lines. Errors
    (``ValueError`` naming file and line): no header, missing columns, a row with more or fewer
    fields than the header, malformed quoting, and every error of :func:`read_lines`."""
    lines = whole_lines(path)
    numbers: list[int] = []

    def feed():
        for line_no, text in lines:
            numbers.append(line_no)
            yield text + "\n"

    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # long sequences are fine in a cell
    reader = csv.reader(feed(), delimiter=sep, strict=True)
    header, index = None, {}
    consumed = 0
    try:
        for row in reader:
            start = numbers[consumed] if consumed < len(numbers) else numbers[-1]
            consumed = len(numbers)
            if not row:
                continue
            if header is None:
                header = [cell.strip() for cell in row]
                missing = [c for c in columns if c not in header]
                if missing:
                    raise ValueError(f"{path} line {start}: missing column(s) {missing}; found {header}")
                index = {c: header.index(c) for c in columns}
                continue
            if len(row) != len(header):
                extra = " (a trailing separator?)" if len(row) > len(header) and not row[-1] else ""
                raise ValueError(
                    f"{path} line {start}: {len(row)} fields, the header (line "
                    f"{numbers[0]}) has {len(header)}{extra}"
                )
            yield start, {c: row[i] for c, i in index.items()}
    except csv.Error as error:
        raise ValueError(f"{path} line {numbers[-1] if numbers else 1}: malformed table ({error})") from None
    if header is None:
        raise ValueError(f"{path}: empty file")


# ---------------------------------------------------------------- YAML with file-named errors


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key written twice in one mapping (PyYAML keeps the last
    silently: a second task of the same name would replace the first). Keys merged in with
    ``<<: *anchor`` may be overridden, as YAML intends."""


def _construct_unique(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, (str, int, float, bool)) and key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} appears twice in one mapping (first on line {seen[key] + 1})",
                key_node.start_mark,
            )
        if isinstance(key, (str, int, float, bool)):
            seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique)


def read_yaml(path) -> object:
    """The YAML of ``path``; a syntax error, a duplicate key or undecodable text is a
    ``ValueError`` naming the file (and the line, where YAML knows it)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ContractError(f"{path}: not UTF-8 text ({error})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise ContractError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
