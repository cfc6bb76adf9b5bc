#!/bin/sh
# The server's folders are layers; a file may include headers of its own
# folder and of folders below it, never above:
#   util < plugin < model < store < session < io < admin < main.c
# (protocol/ and plugins/include/ are below all of them).  Prints every
# include that points up and fails if there is one.
top=${top_srcdir:-$(dirname "$0")/..}
cd "$top/server" || exit 1
rank() {
	case $1 in
	util) echo 0 ;; plugin) echo 1 ;; model) echo 2 ;; store) echo 3 ;;
	session) echo 4 ;; io) echo 5 ;; admin) echo 6 ;; main) echo 7 ;; *) echo -1 ;;
	esac
}
bad=0
for f in */*.[ch] main.c; do
	case $f in */*) layer=${f%%/*} ;; *) layer=main ;; esac
	r=$(rank "$layer")
	for inc in $(sed -n 's/^#include "\([a-z_]*\)\/[^"]*".*/\1/p' "$f" | sort -u); do
		ir=$(rank "$inc")
		[ "$ir" -lt 0 ] && continue # amqpd/ (plugin ABI) and the like
		if [ "$ir" -gt "$r" ]; then
			echo "check-layers: server/$f ($layer) includes $(grep -o "#include \"$inc/[^\"]*\"" "$f" | tr '\n' ' ')"
			bad=1
		fi
	done
done
[ $bad = 0 ] && echo "check-layers: every include points down"
exit $bad
