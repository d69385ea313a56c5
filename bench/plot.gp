# bench/plot.gp - ns per operation of every store, from hmmbench's CSV.
#   gnuplot -e "csv='bench/results.csv'; png='bench/results.png'" bench/plot.gp
# (`make bench` does this.)  Four panels: 1 M and 10 k keys, 8- and 256-byte
# values, uniform keys; one bar per store for each workload, log scale.
if (!exists("csv")) csv = 'bench/results.csv'
if (!exists("png")) png = 'bench/results.png'

set terminal pngcairo size 1600,1100 font ",10"
set output png
set datafile separator ","

stores = "local hmm_file hmm_anon hmm_cache hmm_noreplog hmm_nometrics lmdb sqlite redis memcached"
nstores = words(stores)
colors = "#000000 #1f77b4 #6baed6 #17becf #9edae5 #2ca02c #d62728 #ff7f0e #9467bd #8c564b"
bw = 0.8 / nstores
wid(w) = w eq "get" ? 0 : w eq "put (overwrite)" ? 1 : w eq "put (insert)" ? 2 : w eq "incr" ? 3 : w eq "mixed 90/10" ? 4 : NaN
# Rows of the single-process table for keys k and v-byte values (inserts are "fresh").
row(k, v) = strcol(1) eq "single" && $3 == k && $4 == v && (strcol(5) eq "uniform" || strcol(5) eq "fresh")
xpos(k, v, i) = row(k, v) && strcol(6) eq word(stores, i) ? wid(strcol(2)) - 0.4 + (i - 0.5) * bw : NaN

set style fill solid 0.85 border -1
set boxwidth bw
set logscale y
set yrange [1:100000]
set ylabel "ns per operation (log)"
set grid ytics
set xrange [-0.5:4.5]
set xtics ("get" 0, "put (overwrite)" 1, "put (insert)" 2, "incr" 3, "mixed 90/10" 4)
set key outside right top vertical

set multiplot layout 2,2 title "hmmbench: one process, uniform 16-byte keys (lower is better)"
do for [panel in "1000000:8 1000000:256 10000:8 10000:256"] {
    K = int(substr(panel, 1, strstrt(panel, ":") - 1))
    V = int(substr(panel, strstrt(panel, ":") + 1, strlen(panel)))
    set title sprintf("%d keys, %d-byte values", K, V)
    plot for [i=1:nstores] csv using (xpos(K, V, i)):8 with boxes lc rgb word(colors, i) title word(stores, i) noenhanced
}
unset multiplot
