/*
 * mp4.js - just enough of the ISO base media file format to feed Media
 * Source Extensions: splitting a byte stream into complete top-level boxes
 * (ftyp, moov, moof, mdat ...) and reading the codec string of the video
 * track from the moov box ("avc1.PPCCLL" from avcC; "hvc1..." from hvcC).
 */
function type4(b, o) { return String.fromCharCode(b[o], b[o + 1], b[o + 2], b[o + 3]); }

function u32(b, o) { return ((b[o] << 24) >>> 0) + (b[o + 1] << 16) + (b[o + 2] << 8) + b[o + 3]; }

/* Complete top-level boxes at the front of buf: [{type, start, end}] and
 * how many bytes they cover. */
export function splitBoxes(buf) {
  const boxes = [];
  let o = 0;
  while (buf.length - o >= 8) {
    let size = u32(buf, o);
    const type = type4(buf, o + 4);
    if (size === 1) {
      if (buf.length - o < 16) break;
      size = u32(buf, o + 8) * 2 ** 32 + u32(buf, o + 12);
    }
    if (size < 8) throw new Error(`bad MP4 box ${type} of ${size} bytes`);
    if (buf.length - o < size) break;
    boxes.push({ type, start: o, end: o + size });
    o += size;
  }
  return { boxes, used: o };
}

function find(buf, name) {
  const a = name.charCodeAt(0), b = name.charCodeAt(1), c = name.charCodeAt(2), d = name.charCodeAt(3);
  for (let i = 4; i + 4 <= buf.length; i++)
    if (buf[i] === a && buf[i + 1] === b && buf[i + 2] === c && buf[i + 3] === d) return i;
  return -1;
}

const hex2 = (v) => v.toString(16).padStart(2, '0');

/* The RFC 6381 codec string of the moov's video track, or null. */
export function codecString(moov) {
  let i = find(moov, 'avcC');
  if (i >= 0 && i + 8 <= moov.length)
    return `avc1.${hex2(moov[i + 5])}${hex2(moov[i + 6])}${hex2(moov[i + 7])}`;
  i = find(moov, 'hvcC');
  if (i >= 0 && i + 17 <= moov.length) {
    const p = moov[i + 5];
    const space = ['', 'A', 'B', 'C'][p >> 6];
    const tier = (p & 0x20) ? 'H' : 'L';
    const level = moov[i + 16];
    return `hvc1.${space}${p & 0x1f}.4.${tier}${level}.B0`;
  }
  return null;
}
