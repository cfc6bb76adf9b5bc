#!/bin/sh
# Every tracked-looking C source in the tree must be clang-format clean.
set -u
cf=${CLANG_FORMAT:-clang-format}
if ! command -v "$cf" >/dev/null 2>&1; then
	echo "FAIL: clang-format not found (apt-get install clang-format)"
	exit 1
fi
cd "$top_srcdir" || exit 1
bad=0
for f in $(find protocol server plugins tests bench -name '*.[ch]' -not -path '*/.deps/*' 2>/dev/null | sort); do
	if ! "$cf" --dry-run --Werror "$f" >/dev/null 2>&1; then
		echo "not clang-format clean: $f (run: clang-format -i $f)"
		bad=1
	fi
done
[ $bad -eq 0 ] && echo "formatting ok"
exit $bad
