# bench/repl_plot.gp - replication lag over time, from bench/replbench's CSV.
#   gnuplot -e "csv='bench/repl_lag.csv'; png='bench/repl_lag.png'" bench/repl_plot.gp
# (`make bench-repl` does this.)  One line per replica (R1, R2: replicas of
# the primary; R3: a replica of R1), the write rate on the second axis.
if (!exists("csv")) csv = 'bench/repl_lag.csv'
if (!exists("png")) png = 'bench/repl_lag.png'

set terminal pngcairo size 1400,700 font ",10"
set output png
set datafile separator ","
set key autotitle columnhead outside right top vertical
set xlabel "seconds since the start"
set ylabel "lag (ms, upper bound at 10 ms granularity)"
set y2label "changes written per second"
set y2tics
set ytics nomirror
set grid ytics
set title "hashmmap-replicate on loopback: lag of each replica under phases of sustained writes"
dt(c) = (prev_t = t0, prev_w = w0, t0 = column(2), w0 = column(3), t0 > prev_t ? (w0 - prev_w) * 1000.0 / (t0 - prev_t) : NaN)
t0 = 0; w0 = 0
plot csv using ($2/1000):4 with lines lw 2 title "R1 (of P)", \
     csv using ($2/1000):5 with lines lw 2 title "R2 (of P)", \
     csv using ($2/1000):6 with lines lw 2 title "R3 (of R1, chained)", \
     csv using ($2/1000):(dt(0)) axes x1y2 with lines lc rgb "#bbbbbb" title "write rate"
