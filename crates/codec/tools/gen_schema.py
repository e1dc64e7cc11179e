#!/usr/bin/env python3
"""Generate src/schema/generated.rs from k8s.io/api and k8s.io/apimachinery (generated.proto + Go types).

The wire schema of every message (field numbers, types, repeated/map) comes from the
`generated.proto` files.  How Go's encoding/json would have written the same Go struct is only
visible in the Go struct tags, and this script extracts three facts from them:

* fields whose JSON name differs from the protobuf field name, and `json:",inline"` fields
  (whose message is flattened into the parent object, e.g. `Volume.volumeSource`);
* scalar fields whose zero value is still written by Go's JSON encoder: pointers (`*int32`,
  `*bool`, `*string`...) and fields without `omitempty`.  Go's protobuf encoder always writes
  non-pointer scalars, so all other zero scalars are dropped by the decoder;
* named slice types (`type ExtraValue []string`) that protobuf wraps in a message `{items}`.

Usage: gen_schema.py <k8s.io/api checkout> <k8s.io/apimachinery checkout> > src/schema/generated.rs
(both at the tag matching the Kubernetes minor version served, e.g. v0.35.7, for instance
`git -C api archive v0.35.7 | tar -x -C /tmp/k8sapi`), then `cargo fmt -p codec`
(src/schema/generated.rs itself is skipped by rustfmt).
"""
import os
import re
import sys

FIELD_RE = re.compile(r'^\s*(?:(\w+)\s+)?([^\s`]+)\s+`([^`]*)`')
STRUCT_RE = re.compile(r'^type (\w+) struct \{')
SLICE_RE = re.compile(r'^type (\w+) \[\]\w+\s*$')
TAG_RE = re.compile(r'(\w+):"([^"]*)"')


def go_files(d):
    for f in sorted(os.listdir(d)):
        if f.endswith('.go') and not f.endswith('_test.go') and not f.startswith('zz_generated') \
                and f != 'generated.pb.go':
            yield os.path.join(d, f)


def scan_package(d, pkg, out_fields, out_slices):
    proto = os.path.join(d, 'generated.proto')
    if not os.path.exists(proto):
        return
    messages = set(re.findall(r'^message (\w+) \{', open(proto).read(), re.M))
    for path in go_files(d):
        struct = None
        for line in open(path, encoding='utf-8'):
            m = STRUCT_RE.match(line)
            if m:
                struct = m.group(1)
                continue
            m = SLICE_RE.match(line)
            if m and m.group(1) in messages:
                out_slices.add(f'{pkg}.{m.group(1)}')
                continue
            if struct is None:
                continue
            if line.startswith('}'):
                struct = None
                continue
            if struct not in messages:
                continue
            m = FIELD_RE.match(line)
            if not m:
                continue
            gotype = m.group(2)
            tags = dict(TAG_RE.findall(m.group(3)))
            if 'protobuf' not in tags:
                continue
            pb = tags['protobuf'].split(',')
            if len(pb) < 3:
                continue
            number = int(pb[1])
            rep = pb[2] == 'rep'
            pbname = next((p[5:] for p in pb if p.startswith('name=')), None)
            js = tags.get('json', '').split(',')
            jsname = js[0]
            omitempty = 'omitempty' in js[1:]
            inline = 'inline' in js[1:] and jsname == ''
            rename = None
            if inline:
                rename = ''
            elif jsname and jsname != '-' and jsname != pbname:
                rename = jsname
            keep_zero = (not rep and not gotype.startswith('map[') and not gotype.startswith('[]')
                         and (gotype.startswith('*') or not omitempty))
            if rename is not None or keep_zero:
                out_fields.append((f'{pkg}.{struct}', number, rename, keep_zero))


PROTO_FIELD_RE = re.compile(r'^\s*(optional|repeated)\s+([\w\.]+)\s+(\w+)\s*=\s*(\d+)\s*;')
PROTO_MAP_RE = re.compile(r'^\s*map<\s*(\w+)\s*,\s*([\w\.]+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;')
# The only scalar types k8s.io/api uses; anything else needs a new `Ty` variant in src/schema.
SCALARS = {'bool': 'Bool', 'int32': 'Int32', 'int64': 'Int64', 'string': 'Str', 'bytes': 'Bytes'}


def parse_proto(path, messages):
    """Appends (full name, [(label, type, name, number)]) for each message of one proto file."""
    pkg = None
    current = None
    for line in open(path, encoding='utf-8'):
        m = re.match(r'^package ([\w\.]+);', line)
        if m:
            pkg = m.group(1)
            continue
        m = re.match(r'^message (\w+) \{', line)
        if m:
            current = (f'{pkg}.{m.group(1)}', [])
            messages.append(current)
            continue
        if line.startswith('}'):
            current = None
            continue
        if current is None:
            continue
        m = PROTO_FIELD_RE.match(line)
        if m:
            current[1].append((m.group(1), m.group(2), m.group(3), int(m.group(4)), pkg))
            continue
        m = PROTO_MAP_RE.match(line)
        if m:
            assert m.group(1) == 'string', line
            current[1].append(('map', m.group(2), m.group(3), int(m.group(4)), pkg))
            continue
        assert not re.match(r'^\s*(optional|repeated|required|map|oneof|enum|message)\b', line), line


def group_name(d):
    reg = os.path.join(d, 'register.go')
    if not os.path.exists(reg):
        return None
    m = re.search(r'^const GroupName = "([^"]*)"', open(reg).read(), re.M)
    return m.group(1) if m else None


def main():
    api, apimachinery = sys.argv[1], sys.argv[2]
    fields, slices, messages, gvs = [], set(), [], []
    dirs = []
    for group in sorted(os.listdir(api)):
        gdir = os.path.join(api, group)
        if not os.path.isdir(gdir) or group.startswith('.'):
            continue
        for version in sorted(os.listdir(gdir)):
            vdir = os.path.join(gdir, version)
            if os.path.exists(os.path.join(vdir, 'generated.proto')):
                dirs.append((vdir, f'k8s.io.api.{group}.{version}', version))
    for sub in ['pkg/apis/meta/v1', 'pkg/apis/meta/v1beta1', 'pkg/runtime', 'pkg/api/resource',
                'pkg/util/intstr']:
        d = os.path.join(apimachinery, sub)
        if os.path.exists(os.path.join(d, 'generated.proto')):
            dirs.append((d, 'k8s.io.apimachinery.' + sub.replace('/', '.'), os.path.basename(d)))
    for d, pkg, version in dirs:
        scan_package(d, pkg, fields, slices)
        parse_proto(os.path.join(d, 'generated.proto'), messages)
        g = group_name(d)
        if g is not None:
            gvs.append((f'{g}/{version}' if g else version, pkg))
    messages.sort()
    index = {name: i for i, (name, _) in enumerate(messages)}
    overrides = {(m, n): (r, k) for m, n, r, k in fields}
    out = []
    w = out.append
    w('// @generated by tools/gen_schema.py from k8s.io/api and k8s.io/apimachinery v0.35.7')
    w('// (generated.proto for the wire schema, Go struct tags for the JSON names and zero-value')
    w('// rules). Do not edit by hand: regenerate it (see the script).')
    w('')
    w('use super::{Card::*, Field, Message, Ty::*};')
    w('')
    w('/// Every message, sorted by full protobuf name (binary-searchable).')
    w('pub(crate) static MESSAGES: &[Message] = &[')
    for name, flds in messages:
        w(f'    Message {{ name: "{name}", fields: &[')
        for label, typ, fname, number, pkg in flds:
            if typ in SCALARS:
                ty = SCALARS[typ]
            else:
                full = typ[1:] if typ.startswith('.') else f'{pkg}.{typ}'
                if full not in index:
                    raise SystemExit(f'unknown type {typ} in {name}')
                ty = f'Msg({index[full]})'
            card = {'optional': 'Single', 'repeated': 'Repeated', 'map': 'Map'}[label]
            rename, keep = overrides.get((name, number), (None, False))
            json = fname if rename is None else rename
            flags = []
            if keep and label == 'optional':
                flags.append('KEEP_ZERO')
            if rename == '':
                flags.append('INLINE')
            f = ' | '.join(f'Field::{x}' for x in flags) or '0'
            w(f'        Field {{ number: {number}, json: "{json}", ty: {ty}, card: {card}, flags: {f} }},')
        w('    ] },')
    w('];')
    w('')
    w('/// `(apiVersion, protobuf package)` of every group version of k8s.io/api (and meta.k8s.io/v1).')
    w('pub(crate) static GROUP_VERSIONS: &[(&str, &str)] = &[')
    for gv, pkg in sorted(gvs):
        w(f'    ("{gv}", "{pkg}"),')
    w('];')
    w('')
    w('/// Messages that wrap a Go named slice type (`type X []string`): JSON is the `items` array.')
    w('pub(crate) static LIST_WRAPPERS: &[&str] = &[')
    for s in sorted(slices):
        w(f'    "{s}",')
    w('];')
    print('\n'.join(out))


if __name__ == '__main__':
    main()
