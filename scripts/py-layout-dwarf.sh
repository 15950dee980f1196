#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Print the offsets of agent/runtime/python.c's layout table as read from the
# DWARF of a CPython build (pyenv builds carry it), one "key=value" a line,
# the same keys `sw-pylayout --dump MAJOR.MINOR` prints from the table.
# tests/root/test_python_layout.py compares the two, so every row of the
# table is checked against the compiler's own view of the structs.
#
#   scripts/py-layout-dwarf.sh /root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0 3.11
set -eu
lib=$1
ver=$2

off() { # key expression
	echo "-ex 'printf \"$1=%ld\\n\", (long)&(($2)0)->$3'"
}
size() {
	echo "-ex 'printf \"$1=%ld\\n\", (long)sizeof($2)'"
}

rt='struct pyruntimestate *'
is='struct _is *'
ts='struct _ts *'
gil='struct _gil_runtime_state *'
code='PyCodeObject *'
args="$(off runtime.interpreters_head "$rt" interpreters.head) $(off runtime.interpreters_main "$rt" interpreters.main)"
case $ver in
3.9|3.10|3.11)
	args="$args $(off runtime.gil "$rt" ceval.gil) $(off runtime.tstate_current "$rt" gilstate.tstate_current)" ;;
*)
	args="$args $(off interp.gil_ptr "$is" ceval.gil)" ;;
esac
args="$args $(off interp.runtime "$is" runtime) $(off interp.gc_collecting "$is" gc.collecting)"
case $ver in
3.9|3.10) args="$args $(off interp.threads_head "$is" tstate_head)" ;;
*) args="$args $(off interp.threads_head "$is" threads.head)" ;;
esac
case $ver in
3.9|3.10|3.11|3.12) args="$args $(off interp.gil_drop_request "$is" ceval.gil_drop_request)" ;;
*) args="$args $(off tstate.eval_breaker "$ts" eval_breaker)" ;;
esac
for f in interval last_holder locked switch_number cond mutex switch_cond switch_mutex; do
	args="$args $(off gil.$f "$gil" $f)"
done
args="$args $(size gil.size 'struct _gil_runtime_state')"
args="$args $(off tstate.next "$ts" next) $(off tstate.interp "$ts" interp) $(off tstate.thread_id "$ts" thread_id)"
case $ver in
3.9|3.10)
	args="$args $(off tstate.frame "$ts" frame)"
	fr='struct _frame *'
	args="$args $(off frame.code "$fr" f_code) $(off frame.previous "$fr" f_back) $(off frame.instr "$fr" f_lasti)"
	args="$args $(off code.code "$code" co_code) $(off bytes.sval 'PyBytesObject *' ob_sval)"
	;;
*)
	args="$args $(off tstate.native_thread_id "$ts" native_thread_id)"
	fr='struct _PyInterpreterFrame *'
	case $ver in
	3.11|3.12)
		args="$args $(off tstate.cframe "$ts" cframe) $(off cframe.current_frame 'struct _PyCFrame *' current_frame)"
		args="$args $(off frame.code "$fr" f_code) $(off frame.instr "$fr" prev_instr)" ;;
	*)
		args="$args $(off tstate.current_frame "$ts" current_frame)"
		args="$args $(off frame.code "$fr" f_executable) $(off frame.instr "$fr" instr_ptr)" ;;
	esac
	args="$args $(off frame.previous "$fr" previous) $(off frame.owner "$fr" owner)"
	[ "$ver" = 3.11 ] && args="$args $(off frame.is_entry "$fr" is_entry)"
	args="$args $(off code.qualname "$code" co_qualname) $(off code.code "$code" co_code_adaptive)"
	args="$args $(off code.firsttraceable "$code" _co_firsttraceable)"
	;;
esac
case $ver in
3.9) args="$args $(off code.linetable "$code" co_lnotab)" ;;
*) args="$args $(off code.linetable "$code" co_linetable)" ;;
esac
args="$args $(off code.name "$code" co_name) $(off code.filename "$code" co_filename) $(off code.firstlineno "$code" co_firstlineno)"
args="$args $(size unicode.ascii_data PyASCIIObject) $(size unicode.compact_data PyCompactUnicodeObject)"
args="$args $(off unicode.length 'PyASCIIObject *' length) $(off unicode.state 'PyASCIIObject *' state)"
args="$args $(off bytes.size 'PyBytesObject *' ob_base.ob_size)"
eval "gdb -batch -nx $args \"\$lib\"" 2>&1 | grep -v "^$"
# The bit positions in PyASCIIObject.state: gdb's expressions cannot take a
# bit field's position, its ptype /o prints it ("/*  32: 2 | 4 */ ... kind : 3;").
gdb -batch -nx -ex 'ptype /o PyASCIIObject' "$lib" 2>&1 |
	sed -n 's#^/\* *[0-9]*: *\([0-9]*\) .* \(kind\|compact\|ascii\) : [0-9];$#\2 \1#p' |
	while read -r field bit; do
		case $field in
		kind) echo "unicode.kind_shift=$bit" ;;
		*) echo "unicode.${field}_bit=$bit" ;;
		esac
	done
