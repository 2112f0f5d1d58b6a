"""proto/*.proto against the definitions tritonclient was generated from.

Field names and numbers of our copies of Triton's grpc_service.proto and model_config.proto
must be exactly upstream's, or real clients break. tritonclient (in the venv) carries upstream's
descriptors; this compares every package, message, field (name, number, type, label, oneof),
enum value, map entry and RPC with ours, read from the descriptor set the build writes.

usage: proto_compat_test.py <descriptor set written by protoc --include_imports>
Exits 77 (skipped) when tritonclient is not installed.
"""
import sys

from google.protobuf import descriptor_pb2

try:
    from tritonclient.grpc import model_config_pb2, service_pb2
except ImportError:
    print("tritonclient is not installed: skipped")
    sys.exit(77)

TYPES = {v: k[len("TYPE_"):].lower() for k, v in descriptor_pb2.FieldDescriptorProto.Type.items()}
LABELS = {1: "optional", 2: "required", 3: "repeated"}


def enum_lines(e, indent, out):
    out.append(f"{indent}enum {e.name}")
    out.extend(f"{indent}  {v.name} = {v.number}" for v in e.value)


def message_lines(m, indent, out):
    out.append(f"{indent}message {m.name}" + (" [map entry]" if m.options.map_entry else ""))
    for e in m.enum_type:
        enum_lines(e, indent + "  ", out)
    for n in m.nested_type:
        message_lines(n, indent + "  ", out)
    for f in m.field:
        oneof = f" oneof {m.oneof_decl[f.oneof_index].name}" if f.HasField("oneof_index") else ""
        kind = f.type_name or TYPES[f.type]
        out.append(f"{indent}  {LABELS[f.label]} {kind} {f.name} = {f.number}{oneof}")


def file_lines(fd):
    out = [f"file {fd.name} package {fd.package} syntax {fd.syntax} imports {list(fd.dependency)}"]
    for e in fd.enum_type:
        enum_lines(e, "", out)
    for m in fd.message_type:
        message_lines(m, "", out)
    for s in fd.service:
        out.append(f"service {s.name}")
        for r in s.method:
            cs = "stream " if r.client_streaming else ""
            ss = "stream " if r.server_streaming else ""
            out.append(f"  rpc {r.name}({cs}{r.input_type}) returns ({ss}{r.output_type})")
    return out


def main():
    ours = descriptor_pb2.FileDescriptorSet()
    with open(sys.argv[1], "rb") as f:
        ours.ParseFromString(f.read())
    ours_by_name = {fd.name: fd for fd in ours.file}
    failed = False
    for module in (model_config_pb2, service_pb2):
        upstream = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(upstream)
        mine = ours_by_name.get(upstream.name)
        if mine is None:
            print(f"FAIL: no {upstream.name} in {sys.argv[1]}")
            failed = True
            continue
        want, got = file_lines(upstream), file_lines(mine)
        if want != got:
            import difflib
            print(f"FAIL: {upstream.name} differs from tritonclient's (- upstream, + ours):")
            print("\n".join(difflib.unified_diff(want, got, lineterm="", n=2)))
            failed = True
        else:
            print(f"ok: {upstream.name}: {len(want)} definitions identical to tritonclient's")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
